"""The demo brand `kinfolk dev` seeds, so a new user sees something alive at once.

Seeding goes through the public API (in process), exactly as a brand's own systems would. The demo
brand's id and admin key are kept in the data folder so restarts reuse them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
from fastapi import FastAPI

from services.demo.community import seed_community
from services.demo.members import demo_members, member_records
from services.demo.rewards import seed_rewards
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.drain import drain_events
from services.kernel.embedded import InfrastructureUrls
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES

DEMO_BRAND_NAME = "Kinfolk Demo Beauty"
DEMO_MEMBERS = 500


@dataclass(frozen=True)
class DemoBrand:
    brand_id: uuid.UUID
    api_key: str
    sample_member: str  # an external id, for `kinfolk token`


async def ensure_demo_brand(
    settings: Settings, runtime: Runtime, app: FastAPI, *, size: int = DEMO_MEMBERS
) -> DemoBrand:
    """The demo brand recorded in the data folder if it still works, else a newly seeded one."""
    record = settings.data_dir / "demo-brand.json"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk") as client:
        if record.exists():
            saved = json.loads(record.read_text())
            check = await client.get(
                "/members/v1/members",
                params={"limit": 1},
                headers={"Authorization": f"Bearer {saved['api_key']}"},
            )
            if check.status_code == 200:
                return DemoBrand(uuid.UUID(saved["brand_id"]), saved["api_key"], "demo-00001")

        async with runtime.database.unit_of_work() as session:
            brand, api_key = await members_service.create_brand(session, DEMO_BRAND_NAME)
        headers = {"Authorization": f"Bearer {api_key}"}
        members = demo_members(size)
        body = "\n".join(json.dumps(m) for m in members).encode()
        response = await client.post(
            "/members/v1/members/import",
            content=body,
            headers={**headers, "Content-Type": "application/x-ndjson"},
        )
        response.raise_for_status()
        await drain_events(runtime, SERVICES, "demo-seed")
        now = utcnow()
        await seed_rewards(client, headers, members, now)
        tokens = MemberTokenCodec(settings)
        await seed_community(
            client,
            headers,
            await member_records(client, headers),
            lambda member_id: tokens.issue(brand.id, uuid.UUID(member_id), timedelta(hours=1)),
            now,
        )
        await drain_events(runtime, SERVICES, "demo-seed")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"brand_id": str(brand.id), "api_key": api_key}))
    record.chmod(0o600)
    return DemoBrand(brand.id, api_key, "demo-00001")


def banner(
    settings: Settings, urls: InfrastructureUrls, demo: DemoBrand, *, host: str, port: int
) -> str:
    base = f"http://{host}:{port}"
    return f"""
Kinfolk is running.

  API            {base}
  API docs       {base}/docs
  Health         {base}/healthz   {base}/readyz   {base}/metrics
  PostgreSQL     {urls.database_url}
  Redis          {urls.redis_url}
  Data folder    {settings.data_dir.resolve()}

Demo brand "{DEMO_BRAND_NAME}" ({DEMO_MEMBERS} members)
  brand id       {demo.brand_id}
  staff API key  {demo.api_key}

Try it:
  curl -H "Authorization: Bearer {demo.api_key}" "{base}/members/v1/members?limit=5"

A member token (in another terminal, same folder):
  kinfolk token --brand {demo.brand_id} --member {demo.sample_member}
  curl -H "Authorization: Bearer <token>" {base}/members/v1/me
"""
