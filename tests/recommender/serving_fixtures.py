"""Rows and clients for the serving and experiment tests: catalog items, sessions, member facts
and precomputed lists written straight to the recommender's tables (the trainer is another
module's), and API clients whose app explores a chosen share of each list."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.store.models import (
    Exposure,
    Interaction,
    InteractionKind,
    Item,
    ItemKind,
    ItemStats,
    MemberFacts,
    ModelVersion,
    Recommendation,
    Session,
    VersionStatus,
)
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.ids import new_id
from services.kernel.settings import Settings
from services.registry import SERVICES
from tests.conftest import BrandFixture, app_for, bearer, make_runtime

NIL = uuid.UUID(int=0)


@asynccontextmanager
async def api_client(
    settings: Settings, database: Database, redis: Redis, *, exploration_share: float
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose lists explore `exploration_share` of their places (set past
    the setting's own bounds on purpose: 1.0 explores every place)."""
    configured = settings.model_copy(update={"recommender_exploration_share": exploration_share})
    app = app_for(SERVICES, configured, make_runtime(configured, database, redis))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
        yield client


def member_headers(settings: Settings, brand_id: uuid.UUID, member_id: uuid.UUID) -> dict[str, str]:
    token = MemberTokenCodec(settings).issue(brand_id, member_id, timedelta(hours=1))
    return bearer(token)


async def staff_headers(
    client: httpx.AsyncClient, brand: BrandFixture, scopes: Sequence[str]
) -> dict[str, str]:
    created = await client.post(
        "/members/v1/api-keys",
        json={"name": "-".join(scopes) or "none", "scopes": list(scopes)},
        headers=brand.headers,
    )
    assert created.status_code == 201, created.text
    return bearer(created.json()["key"])


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


async def add_item(
    session: AsyncSession,
    brand_id: uuid.UUID,
    item_id: str,
    *,
    category: str | None = None,
    created_at: datetime | None = None,
    **fields: Any,
) -> Item:
    kind = ItemKind(item_id.partition(":")[0])
    item = Item(
        brand_id=brand_id,
        item_id=item_id,
        kind=kind,
        title=fields.pop("title", f"Title of {item_id}"),
        category=category,
        created_at=created_at or utcnow() - timedelta(days=30),
        **fields,
    )
    session.add(item)
    await session.flush()
    return item


async def add_session(
    session: AsyncSession,
    brand_id: uuid.UUID,
    item_id: str,
    starts_at: datetime,
    *,
    capacity: int | None = 10,
    booked: int = 0,
    cancelled: bool = False,
) -> None:
    session.add(
        Session(
            session_id=new_id(),
            brand_id=brand_id,
            item_id=item_id,
            starts_at=starts_at,
            capacity=capacity,
            booked=booked,
            cancelled=cancelled,
        )
    )
    await session.flush()


async def add_member(
    session: AsyncSession,
    brand_id: uuid.UUID,
    *,
    member_id: uuid.UUID | None = None,
    tier_id: uuid.UUID | None = None,
    personalised: bool = True,
    stale_since: datetime | None = None,
) -> uuid.UUID:
    facts = MemberFacts(
        member_id=member_id or uuid.uuid4(),
        brand_id=brand_id,
        tier_id=tier_id,
        personalised=personalised,
        joined_at=utcnow() - timedelta(days=100),
        stale_since=stale_since,
    )
    session.add(facts)
    await session.flush()
    return facts.member_id


async def add_list(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    surface: str,
    item_ids: Sequence[str],
    *,
    segment: str = "",
    version_id: uuid.UUID | None = None,
    reason: str = "Because you liked it",
) -> None:
    """A precomputed list, scores descending from 1.0, each reason `reason` + its rank."""
    session.add(
        Recommendation(
            brand_id=brand_id,
            member_id=member_id,
            surface=surface,
            segment=segment,
            version_id=version_id,
            item_ids=list(item_ids),
            scores=[1.0 - k / 100 for k in range(len(item_ids))],
            reasons=[f"{reason} #{k + 1}" for k in range(len(item_ids))],
            computed_at=utcnow() - timedelta(hours=1),
        )
    )
    await session.flush()


async def add_interaction(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    item_id: str,
    kind: InteractionKind,
    weight: float,
    *,
    occurred_at: datetime | None = None,
    exposure_id: uuid.UUID | None = None,
) -> None:
    session.add(
        Interaction(
            brand_id=brand_id,
            member_id=member_id,
            item_id=item_id,
            kind=kind,
            weight=weight,
            occurred_at=occurred_at or utcnow() - timedelta(days=1),
            exposure_id=exposure_id,
        )
    )
    await session.flush()


async def add_stats(
    session: AsyncSession, brand_id: uuid.UUID, item_id: str, *, shown: int, taken: int = 0
) -> None:
    session.add(ItemStats(brand_id=brand_id, item_id=item_id, shown=shown, taken=taken))
    await session.flush()


async def add_version(session: AsyncSession, brand_id: uuid.UUID, number: int = 1) -> uuid.UUID:
    version = ModelVersion(
        id=new_id(),
        brand_id=brand_id,
        number=number,
        status=VersionStatus.CANDIDATE,
        artifact_bytes=0,
        trained_at=utcnow() - timedelta(days=1),
    )
    session.add(version)
    await session.flush()
    return version.id


async def count(session: AsyncSession, model: type[Any], brand_id: uuid.UUID) -> int:
    found = await session.scalar(
        select(func.count()).select_from(model).where(model.brand_id == brand_id)
    )
    return int(found or 0)


async def exposures(session: AsyncSession, brand_id: uuid.UUID) -> list[Exposure]:
    rows = await session.scalars(
        select(Exposure).where(Exposure.brand_id == brand_id).order_by(Exposure.id)
    )
    return list(rows.all())


def ids_of(body: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in body["items"]]
