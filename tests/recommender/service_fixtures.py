"""Fixtures for the recommender's intake tests: members created through the members API and
projected into rewards and the community by their real projections, a rewards program, the
events every service wrote (oldest first), and the recommender's consumers fed with them as the
kernel's runner feeds them (inbox first, then the handler or the batch handler).

Import the fixtures into a test module to use them (`from ... import make_member, program`)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.intake.consumers import INTAKE_CONSUMERS
from recommender.store.models import (
    Exposure,
    Interaction,
    Item,
    ItemStats,
    MemberFacts,
    Recommendation,
    Session,
)
from services.community.members.projection import (
    apply_member_event as project_into_community,
)
from services.community.models import OUTBOX as COMMUNITY_OUTBOX
from services.community.models import CommunityMember
from services.kernel.auth import MemberTokenCodec
from services.kernel.consumer import ConsumerSpec
from services.kernel.events import Event, parse_event
from services.kernel.settings import Settings
from services.members.models import OUTBOX as MEMBERS_OUTBOX
from services.rewards.ledger import service as ledger
from services.rewards.ledger.projection import apply_member_event as project_into_rewards
from services.rewards.ledger.schemas import ProgramSettings
from services.rewards.models import OUTBOX as REWARDS_OUTBOX
from services.rewards.models import Program
from tests.conftest import BrandFixture, MemberFixture

OUTBOXES: tuple[Table, ...] = (
    MEMBERS_OUTBOX.table,
    REWARDS_OUTBOX.table,
    COMMUNITY_OUTBOX.table,
)


async def service_events(session: AsyncSession) -> list[Event]:
    """Every event the members, rewards and community services wrote so far, in the order they
    were written (outbox ids are time-ordered UUIDs)."""
    found: list[tuple[uuid.UUID, Event]] = []
    for table in OUTBOXES:
        rows = await session.execute(select(table.c.id, table.c.payload))
        found.extend((row_id, parse_event(orjson.dumps(payload))) for row_id, payload in rows)
    return [event for _, event in sorted(found, key=lambda pair: pair[0])]


async def sync_members(session: AsyncSession) -> None:
    """Feed every members event so far to rewards' and the community's projections, as their
    consumers would (replaying is harmless: both are upserts)."""
    table = MEMBERS_OUTBOX.table
    rows = await session.execute(select(table.c.payload).order_by(table.c.id))
    for (payload,) in rows:
        event = parse_event(orjson.dumps(payload))
        await project_into_rewards(session, event)
        await project_into_community(session, event)


@pytest.fixture
async def program(session: AsyncSession, brand: BrandFixture) -> Program:
    """EUR, a point per euro, available at once, no expiry."""
    settings = ProgramSettings(currency="EUR", points_per_unit=1)
    return await ledger.configure_program(session, brand.id, settings)


MakeMember = Callable[..., Awaitable[MemberFixture]]


@pytest.fixture
def make_member(
    client: httpx.AsyncClient, session: AsyncSession, base_settings: Settings, brand: BrandFixture
) -> MakeMember:
    """Creates a member through the members API, known to rewards and the community;
    `trust_level` sets the community's trust level (3 may host experiences)."""
    tokens = MemberTokenCodec(base_settings)
    counter = 0

    async def make(
        external_id: str | None = None, *, trust_level: int | None = None, **fields: Any
    ) -> MemberFixture:
        nonlocal counter
        counter += 1
        body = {"external_id": external_id or f"r-{counter}", **fields}
        response = await client.post("/members/v1/members", json=body, headers=brand.headers)
        assert response.status_code == 201, response.text
        member_id = uuid.UUID(response.json()["id"])
        await sync_members(session)
        if trust_level is not None:
            await session.execute(
                update(CommunityMember)
                .where(CommunityMember.member_id == member_id)
                .values(trust_level=trust_level)
            )
        token = tokens.issue(brand.id, member_id, timedelta(hours=1))
        return MemberFixture(member_id, brand.id, body["external_id"], token)

    return make


async def _new(session: AsyncSession, spec: ConsumerSpec, events: Sequence[Event]) -> list[Event]:
    """Record the events in the inbox as the runner does; returns those it had not seen."""
    if not events:
        return []
    inserted = set(
        await session.scalars(
            insert(spec.inbox)
            .values([{"consumer": spec.name, "event_id": event.id} for event in events])
            .on_conflict_do_nothing()
            .returning(spec.inbox.c.event_id)
        )
    )
    return [event for event in events if event.id in inserted]


async def feed(
    session: AsyncSession,
    events: Sequence[Event],
    *,
    batch: int | None = None,
    specs: Sequence[ConsumerSpec] = INTAKE_CONSUMERS,
) -> None:
    """Each consumer gets the events it wants, in order: one by one through `handler`
    (`batch` None) or `batch` at a time through `handle_many`, each read in its own savepoint
    as each in its own transaction. Events already in the inbox are skipped."""
    for spec in specs:
        wanted = [event for event in events if spec.wants(event.type)]
        size = batch or 1
        for start in range(0, len(wanted), size):
            async with session.begin_nested():
                chunk = await _new(session, spec, wanted[start : start + size])
                if batch is None:
                    for event in chunk:
                        await spec.handler(session, event)
                elif chunk:
                    assert spec.handle_many is not None
                    await spec.handle_many(session, chunk)


async def interactions(session: AsyncSession, brand_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """(member, item, kind, weight) of the brand's interactions, in the order written."""
    rows = await session.execute(
        select(Interaction.member_id, Interaction.item_id, Interaction.kind, Interaction.weight)
        .where(Interaction.brand_id == brand_id)
        .order_by(Interaction.id)
    )
    return [(member_id, item_id, kind.value, weight) for member_id, item_id, kind, weight in rows]


async def store(session: AsyncSession, brand_id: uuid.UUID) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the intake wrote for the brand, in a stable order, without generated ids."""
    session.expire_all()

    async def rows(model: type[Any], order: Sequence[Any], skip: frozenset[str]) -> list[Any]:
        table: Table = model.__table__
        columns = [c for c in table.c if c.name not in skip]
        found = await session.execute(
            select(*columns).where(table.c.brand_id == brand_id).order_by(*order)
        )
        return [tuple(row) for row in found]

    return {
        "items": await rows(Item, [Item.item_id], frozenset()),
        "sessions": await rows(Session, [Session.session_id], frozenset()),
        "interactions": await rows(
            Interaction,
            [Interaction.occurred_at, Interaction.member_id, Interaction.item_id, Interaction.id],
            frozenset({"id"}),
        ),
        "members": await rows(MemberFacts, [MemberFacts.member_id], frozenset()),
        "item_stats": await rows(ItemStats, [ItemStats.item_id], frozenset()),
        "exposures": await rows(Exposure, [Exposure.id], frozenset()),
        "recommendations": await rows(
            Recommendation, [Recommendation.member_id, Recommendation.surface], frozenset()
        ),
    }
