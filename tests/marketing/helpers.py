"""Shared steps of the marketing tests: feed every service's events to marketing's consumer as
the runner would, and consent changes through the members API."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.events import Event
from services.marketing.audience.consumer import AUDIENCE_CONSUMER
from tests.conftest import BrandFixture, MemberFixture
from tests.recommender.service_fixtures import feed, service_events


async def project(session: AsyncSession, *, batch: int | None = 50) -> list[Event]:
    """Every event so far through marketing's consumer (seen ones are skipped by the inbox)."""
    events = await service_events(session)
    await feed(session, events, batch=batch, specs=(AUDIENCE_CONSUMER,))
    return events


async def set_consent(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    member: MemberFixture,
    purpose: str,
    granted: bool,
) -> None:
    response = await client.put(
        f"/members/v1/members/{member.id}/consents/{purpose}",
        json={"granted": granted, "source": "test"},
        headers=brand.headers,
    )
    assert response.status_code == 200, response.text


def rows_of(members: Sequence[MemberFixture]) -> set[str]:
    return {str(member.id) for member in members}
