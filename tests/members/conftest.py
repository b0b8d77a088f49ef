"""Fixtures for the members service: a member created through the API, the outbox."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import MemberTokenCodec
from services.members.models import OUTBOX
from tests.conftest import BrandFixture, MemberFixture

MEMBER_BODY: dict[str, Any] = {
    "external_id": "crm-1",
    "email": "Ada.Lovelace@Example.com",
    "display_name": "Ada",
    "birthday": "1990-12-10",
    "locale": "en-GB",
    "time_zone": "Europe/London",
    "traits": {"skin_type": "dry", "vip": True, "orders": 3},
    "interests": ["Skincare", "fragrance"],
}


@pytest.fixture
async def member(
    client: httpx.AsyncClient, brand: BrandFixture, tokens: MemberTokenCodec
) -> MemberFixture:
    """A member of `brand` (created through the API) with a one-hour member token."""
    response = await client.post("/members/v1/members", json=MEMBER_BODY, headers=brand.headers)
    assert response.status_code == 201, response.text
    member_id = uuid.UUID(response.json()["id"])
    token = tokens.issue(brand.id, member_id, timedelta(hours=1))
    return MemberFixture(member_id, brand.id, MEMBER_BODY["external_id"], token)


async def outbox_events(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    """Every event written to the members outbox so far, oldest first: (type, payload data)."""
    table = OUTBOX.table
    rows = await session.execute(select(table.c.type, table.c.payload).order_by(table.c.id))
    return [(type_, payload["data"]) for type_, payload in rows]
