"""Fixtures for rewards: a brand with a program, and members that reached rewards through the
real projection (members API → members outbox → `apply_member_event`), all in the test's
rolled-back transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import MemberTokenCodec
from services.kernel.events import parse_event
from services.kernel.settings import Settings
from services.members.models import OUTBOX as MEMBERS_OUTBOX
from services.rewards.ledger import service as ledger
from services.rewards.ledger.projection import apply_member_event
from services.rewards.ledger.schemas import ProgramSettings
from services.rewards.models import OUTBOX, Program
from tests.conftest import BrandFixture, MemberFixture

DEFAULT_PROGRAM = ProgramSettings(currency="EUR", points_per_unit=1)


async def sync_members(session: AsyncSession) -> None:
    """Feed every members event written so far to the rewards projection, as the consumer would."""
    table = MEMBERS_OUTBOX.table
    rows = await session.execute(select(table.c.payload).order_by(table.c.id))
    for (payload,) in rows:
        await apply_member_event(session, parse_event(orjson.dumps(payload)))


@pytest.fixture
async def program(session: AsyncSession, brand: BrandFixture) -> Program:
    """The brand's program: EUR, 1 point per euro, points available at once, no expiry."""
    return await ledger.configure_program(session, brand.id, DEFAULT_PROGRAM)


MakeMember = Callable[..., Awaitable[MemberFixture]]


@pytest.fixture
def make_member(
    client: httpx.AsyncClient, session: AsyncSession, base_settings: Settings, brand: BrandFixture
) -> MakeMember:
    """Creates members through the members API and projects them into rewards."""
    tokens = MemberTokenCodec(base_settings)
    counter = 0

    async def make(
        external_id: str | None = None, brand_fixture: BrandFixture | None = None, **fields: Any
    ) -> MemberFixture:
        nonlocal counter
        counter += 1
        owner = brand_fixture or brand
        body = {"external_id": external_id or f"m-{counter}", **fields}
        response = await client.post("/members/v1/members", json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        member_id = uuid.UUID(response.json()["id"])
        await sync_members(session)
        token = tokens.issue(owner.id, member_id, timedelta(hours=1))
        return MemberFixture(member_id, owner.id, body["external_id"], token)

    return make


@pytest.fixture
async def member(make_member: MakeMember, program: Program) -> MemberFixture:
    """A member of `brand`, known to rewards, with a member token; the program is configured."""
    return await make_member("crm-1", email="ada@example.com", birthday="1990-06-15")


async def rewards_events(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    """Every event in the rewards outbox so far, oldest first: (type, payload data)."""
    table = OUTBOX.table
    rows = await session.execute(select(table.c.type, table.c.payload).order_by(table.c.id))
    return [(type_, payload["data"]) for type_, payload in rows]
