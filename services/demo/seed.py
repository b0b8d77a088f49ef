"""The demo brand `kinfolk dev` seeds, so a new user sees something alive at once.

Its past comes from the simulator (`simulator.run.simulate`, through the services' bulk paths): a
few thousand members who joined over a year, their purchases, tiers and points, and what they did
in the community. What the brand runs this week (a campaign, the perks catalog and a drop,
redemptions, groups, a challenge, a prompt, experiences next week) goes through the public API in
process, as a brand's own systems would send it, dated relative to now.

The brand's id and admin key are kept in the data folder as soon as the brand exists, so a restart
reuses a seeded brand and resumes an interrupted seed (the simulator resumes from its state file).
The seed leaves its events (points for content, reputation, milestones, payments for bookings)
in the outboxes: the relay and workers `kinfolk dev` runs deliver them in the first minute or two
while it serves, instead of holding up its start.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from recommender.training import tasks as training
from services.demo.community import seed_community
from services.demo.members import member_records
from services.demo.rewards import seed_catalog
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.drain import drain_events
from services.kernel.embedded import InfrastructureUrls
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service as members_service
from services.registry import SERVICES
from simulator import run as simulator
from simulator.world import external_id

DEMO_BRAND_NAME = "Kinfolk Demo Beauty"
DEMO_MEMBERS = 2_000
DEMO_DAYS = 365
DEMO_SEED = 7


@dataclass(frozen=True)
class DemoBrand:
    brand_id: uuid.UUID
    api_key: str
    sample_member: str  # an external id, for `kinfolk token`


@dataclass(frozen=True)
class _Record:
    """The demo brand as kept in the data folder; `seeded` once everything is in."""

    brand_id: uuid.UUID
    api_key: str
    name: str
    seeded: bool

    @classmethod
    def read(cls, path: Path) -> _Record | None:
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        return cls(
            uuid.UUID(saved["brand_id"]),
            saved["api_key"],
            saved.get("name", DEMO_BRAND_NAME),
            bool(saved.get("seeded", True)),  # records older than this flag were whole seeds
        )

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = {"brand_id": str(self.brand_id), "api_key": self.api_key, "name": self.name}
        path.write_text(json.dumps({**saved, "seeded": self.seeded}))
        path.chmod(0o600)  # it holds an admin key


async def ensure_demo_brand(
    settings: Settings,
    runtime: Runtime,
    app: FastAPI,
    *,
    size: int = DEMO_MEMBERS,
    days: int = DEMO_DAYS,
) -> DemoBrand:
    """The demo brand recorded in the data folder if it is whole and its key still works; an
    interrupted seed finished; else a newly seeded one."""
    path = settings.data_dir / "demo-brand.json"
    record = _Record.read(path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk") as client:
        if record is not None and not await _key_works(client, record.api_key):
            record = None  # another database, or the brand is gone: seed a new one
        if record is not None and record.seeded:
            return _demo(record)
        if record is None:
            record = await _new_brand(runtime)
            record.write(path)
        await simulator.simulate(
            runtime,
            simulator.Request(
                members=size,
                days=days,
                seed=DEMO_SEED,
                brand=record.name,
                out=settings.data_dir / "simulations" / f"demo-{record.brand_id}",
                append=True,  # the brand is ours, created above, empty until now
                # The history's events (points for content, reputation, milestones, ...) are
                # delivered by the relay and workers `kinfolk dev` starts next, while it serves.
                settle=False,
            ),
        )
        await _seed_this_week(settings, runtime, client, record)
    record = _Record(record.brand_id, record.api_key, record.name, seeded=True)
    record.write(path)
    return _demo(record)


async def settle(runtime: Runtime, brand_id: uuid.UUID, consumer: str) -> int:
    """What `kinfolk dev`'s relay and worker do in the minutes after a seed, done at once: every
    event delivered, the brand's first model trained and every member's lists folded in (for
    tests and benchmarks that need the demo as a member finds it). Returns the versions trained."""
    await drain_events(runtime, SERVICES, consumer)
    async with runtime.database.unit_of_work() as session:
        trained = await training.train_one(session, brand_id)
    async with runtime.database.unit_of_work() as session:
        await training.fold_in(session)
    return trained


async def _key_works(client: httpx.AsyncClient, api_key: str) -> bool:
    check = await client.get(
        "/members/v1/members",
        params={"limit": 1},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    return check.status_code == 200


async def _new_brand(runtime: Runtime) -> _Record:
    """A new, empty demo brand, under a name no other brand has (the simulator finds the brand
    by its name)."""
    async with runtime.database.unit_of_work() as session:
        name, n = DEMO_BRAND_NAME, 1
        while await members_service.brands_named(session, name):
            n += 1
            name = f"{DEMO_BRAND_NAME} {n}"
        brand, api_key = await members_service.create_brand(session, name)
    return _Record(brand.id, api_key, name, seeded=False)


async def _seed_this_week(
    settings: Settings, runtime: Runtime, client: httpx.AsyncClient, record: _Record
) -> None:
    headers = {"Authorization": f"Bearer {record.api_key}"}
    now = utcnow()
    await seed_catalog(client, headers, now)
    tokens = MemberTokenCodec(settings)
    await seed_community(
        client,
        headers,
        await member_records(client, headers),
        lambda member_id: tokens.issue(record.brand_id, uuid.UUID(member_id), timedelta(hours=1)),
        now,
    )


def _demo(record: _Record) -> DemoBrand:
    return DemoBrand(record.brand_id, record.api_key, external_id(DEMO_SEED, 0))


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
