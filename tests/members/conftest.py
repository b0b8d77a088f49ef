"""Fixtures for the members service: brands with admin keys, members, member tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import MemberTokenCodec
from services.kernel.settings import Settings
from services.members import service
from services.members.models import OUTBOX


@dataclass(frozen=True)
class BrandFixture:
    id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)


@dataclass(frozen=True)
class MemberFixture:
    id: uuid.UUID
    brand_id: uuid.UUID
    external_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_brand(session: AsyncSession, name: str) -> BrandFixture:
    brand, key = await service.create_brand(session, name)
    await session.commit()
    return BrandFixture(brand.id, key)


@pytest.fixture
async def brand(session: AsyncSession) -> BrandFixture:
    """A brand and its admin API key (every scope)."""
    return await make_brand(session, "Acme Beauty")


@pytest.fixture
async def other_brand(session: AsyncSession) -> BrandFixture:
    return await make_brand(session, "Other Brand")


@pytest.fixture
def tokens(base_settings: Settings) -> MemberTokenCodec:
    return MemberTokenCodec(base_settings)


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
