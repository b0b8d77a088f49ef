"""The demo brand `kinfolk dev` seeds, so a new user sees something alive at once.

Seeding goes through the public API (in process), exactly as a brand's own systems would. The demo
brand's id and admin key are kept in the data folder so restarts reuse them.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
from fastapi import FastAPI

from services.kernel.db import Database
from services.kernel.embedded import InfrastructureUrls
from services.kernel.settings import Settings
from services.members import service as members_service

DEMO_BRAND_NAME = "Kinfolk Demo Beauty"
DEMO_MEMBERS = 500
_FIRST = [
    "Ava",
    "Mia",
    "Zoe",
    "Lena",
    "Nora",
    "Iris",
    "Maya",
    "Ruby",
    "Sofia",
    "Alex",
    "Sam",
    "Noah",
    "Leo",
    "Jules",
    "Rosa",
    "Ines",
    "Yara",
    "Omar",
    "Kai",
    "Elif",
]
_LAST = [
    "Martin",
    "Garcia",
    "Chen",
    "Okafor",
    "Rossi",
    "Nguyen",
    "Silva",
    "Dubois",
    "Khan",
    "Novak",
    "Larsen",
    "Moreau",
    "Tanaka",
    "Haddad",
    "Kowalski",
]
_SKIN = ["dry", "oily", "combination", "normal", "sensitive"]
_CONCERNS = ["acne", "dullness", "redness", "fine lines", "dark spots", "pores", "dehydration"]
_CATEGORIES = ["skincare", "makeup", "fragrance", "hair", "bath", "tools"]
_ZONES = ["Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Tokyo"]
_LOCALES = ["fr-FR", "en-GB", "en-US", "en-US", "ja-JP"]


@dataclass(frozen=True)
class DemoBrand:
    brand_id: uuid.UUID
    api_key: str
    sample_member: str  # an external id, for `kinfolk token`


def demo_members(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Deterministic demo members with beauty-profile traits and interests."""
    rng = random.Random(seed)
    members = []
    for n in range(1, count + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        place = rng.randrange(len(_ZONES))
        favourites = rng.sample(_CATEGORIES, k=rng.randint(1, 3))
        members.append(
            {
                "external_id": f"demo-{n:05d}",
                "email": f"{first.lower()}.{last.lower()}.{n}@example.com",
                "display_name": f"{first} {last[0]}.",
                "birthday": date(
                    rng.randint(1960, 2006), rng.randint(1, 12), rng.randint(1, 28)
                ).isoformat(),
                "locale": _LOCALES[place],
                "time_zone": _ZONES[place],
                "traits": {
                    "skin_type": rng.choice(_SKIN),
                    "concerns": rng.sample(_CONCERNS, k=rng.randint(1, 3)),
                    "favourite_categories": favourites,
                },
                "interests": favourites,
            }
        )
    return members


async def ensure_demo_brand(settings: Settings, database: Database, app: FastAPI) -> DemoBrand:
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

        async with database.unit_of_work() as session:
            brand, api_key = await members_service.create_brand(session, DEMO_BRAND_NAME)
        body = "\n".join(json.dumps(m) for m in demo_members(DEMO_MEMBERS)).encode()
        response = await client.post(
            "/members/v1/members/import",
            content=body,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/x-ndjson",
            },
        )
        response.raise_for_status()
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
