"""Fixtures for the community: members created through the members API and projected into the
community through the real projection, all in the test's rolled-back transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.projection import apply_member_event
from services.community.models import OUTBOX, CommunityMember
from services.kernel.auth import MemberTokenCodec
from services.kernel.events import parse_event
from services.kernel.settings import Settings
from services.members.models import OUTBOX as MEMBERS_OUTBOX
from tests.conftest import BrandFixture, MemberFixture


async def sync_members(session: AsyncSession) -> None:
    """Feed every members event written so far to the community projection, as the consumer
    would (replaying is harmless: the projection is an upsert)."""
    table = MEMBERS_OUTBOX.table
    rows = await session.execute(select(table.c.payload).order_by(table.c.id))
    for (payload,) in rows:
        await apply_member_event(session, parse_event(orjson.dumps(payload)))


MakeMember = Callable[..., Awaitable[MemberFixture]]


@pytest.fixture
def make_member(
    client: httpx.AsyncClient, session: AsyncSession, base_settings: Settings, brand: BrandFixture
) -> MakeMember:
    """Creates a member through the members API and projects them into the community.

    `trust_level` sets the community trust level directly (as if earned), for tests of
    abilities; everything else goes to the members API.
    """
    tokens = MemberTokenCodec(base_settings)
    counter = 0

    async def make(
        external_id: str | None = None,
        brand_fixture: BrandFixture | None = None,
        *,
        trust_level: int | None = None,
        **fields: Any,
    ) -> MemberFixture:
        nonlocal counter
        counter += 1
        owner = brand_fixture or brand
        body = {"external_id": external_id or f"c-{counter}", **fields}
        response = await client.post("/members/v1/members", json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        member_id = uuid.UUID(response.json()["id"])
        await sync_members(session)
        if trust_level is not None:
            await session.execute(
                update(CommunityMember)
                .where(CommunityMember.member_id == member_id)
                .values(trust_level=trust_level)
            )
        token = tokens.issue(owner.id, member_id, timedelta(hours=1))
        return MemberFixture(member_id, owner.id, body["external_id"], token)

    return make


@pytest.fixture
async def member(make_member: MakeMember) -> MemberFixture:
    """A member of `brand`, known to the community, with a member token."""
    return await make_member("ada", display_name="Ada")


@pytest.fixture
async def other_member(make_member: MakeMember) -> MemberFixture:
    """A second member of `brand`."""
    return await make_member("bea", display_name="Bea")


async def community_events(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    """Every event in the community outbox so far, oldest first: (type, payload data)."""
    table = OUTBOX.table
    rows = await session.execute(select(table.c.type, table.c.payload).order_by(table.c.id))
    return [(type_, payload["data"]) for type_, payload in rows]
