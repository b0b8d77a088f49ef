"""The one way the demo seed calls the public API: any error stops the seed with its answer."""

from __future__ import annotations

from typing import Any

import httpx


async def send(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], body: Any = None
) -> Any:
    response = await client.request(method, path, json=body, headers=headers)
    if response.status_code >= 400:
        raise RuntimeError(f"demo seed: {path} answered {response.status_code}: {response.text}")
    return response.json() if response.content else None
