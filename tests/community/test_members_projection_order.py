"""The community's view of members keeps two states of each member, each rewritten whole by its
own events: the profile (`member.*`) and the tier (`tier.changed`). An older event redelivered
after a newer one of the same kind (a failed message retried, a dead letter) is recorded and not
applied, so it cannot put an older state back; one of the other kind still applies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.projection import MEMBERS_PROJECTION
from services.community.models import CommunityMember
from services.kernel.consumer import Applied, apply_event
from services.kernel.db import Database
from services.kernel.events import Event
from services.members.events import (
    MemberCreated,
    MemberCreatedData,
    MemberUpdated,
    MemberUpdatedData,
)
from services.members.models import MemberStatus
from services.rewards.events import TierChanged, TierChangedData
from tests.conftest import BrandFixture

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _profile(member_id: uuid.UUID, name: str) -> dict[str, object]:
    return {
        "member_id": member_id,
        "external_id": None,
        "email": None,
        "display_name": name,
        "birthday": None,
        "locale": None,
        "time_zone": None,
        "traits": {},
        "interests": [],
        "status": MemberStatus.ACTIVE,
    }


def _renamed(brand: BrandFixture, member_id: uuid.UUID, name: str, at: datetime) -> MemberUpdated:
    data = MemberUpdatedData(**_profile(member_id, name), changed=["display_name"])
    return MemberUpdated(brand_id=brand.id, subject_id=member_id, occurred_at=at, data=data)


def _tier(brand: BrandFixture, member_id: uuid.UUID, name: str, at: datetime) -> TierChanged:
    data = TierChangedData(
        member_id=member_id,
        from_tier_id=None,
        from_tier=None,
        to_tier_id=uuid.uuid5(brand.id, name),
        to_tier=name,
        direction="up",
        reason="spend",
        window_spend_minor=50_000,
    )
    return TierChanged(brand_id=brand.id, subject_id=member_id, occurred_at=at, data=data)


def _created(brand: BrandFixture, member_id: uuid.UUID, name: str) -> MemberCreated:
    data = MemberCreatedData(**_profile(member_id, name))
    return MemberCreated(brand_id=brand.id, subject_id=member_id, occurred_at=T0, data=data)


def _hours(n: int) -> datetime:
    return T0 + timedelta(hours=n)


async def test_an_older_event_of_a_kind_never_replaces_a_newer_one_of_that_kind(
    database: Database, session: AsyncSession, brand: BrandFixture
) -> None:
    async def apply(event: Event) -> Applied:
        return await apply_event(database, MEMBERS_PROJECTION, event)

    ada, bo = uuid.uuid4(), uuid.uuid4()
    assert await apply(_created(brand, ada, "Ada")) is Applied.NOW
    assert await apply(_renamed(brand, ada, "Ada L.", _hours(2))) is Applied.NOW
    assert await apply(_tier(brand, ada, "Rouge", _hours(3))) is Applied.NOW
    # Redelivered late: a rename older than the last one, a tier change older than the last one.
    assert await apply(_renamed(brand, ada, "Ada (old)", _hours(1))) is Applied.SUPERSEDED
    assert await apply(_tier(brand, ada, "Insider", _hours(1))) is Applied.SUPERSEDED

    # A tier change older than the member's last rename, but newer than any tier change: the
    # rename is of the other state, so it applies.
    assert await apply(_created(brand, bo, "Bo")) is Applied.NOW
    assert await apply(_renamed(brand, bo, "Bo B.", _hours(5))) is Applied.NOW
    assert await apply(_tier(brand, bo, "Rouge", _hours(4))) is Applied.NOW

    rows = {
        row.member_id: (row.display_name, row.tier_name)
        for row in await session.scalars(select(CommunityMember))
    }
    assert rows == {ada: ("Ada L.", "Rouge"), bo: ("Bo B.", "Rouge")}
