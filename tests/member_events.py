"""Member events for projection tests: one mixed history, to apply one by one and as a batch."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from services.kernel.clock import utcnow
from services.kernel.events import Event
from services.kernel.ids import new_id
from services.members.events import (
    MemberCreated,
    MemberCreatedData,
    MemberErased,
    MemberErasedData,
    MemberUpdated,
    MemberUpdatedData,
)
from services.members.models import MemberStatus
from services.rewards.events import TierChanged, TierChangedData

T0 = utcnow().replace(microsecond=0) - timedelta(days=30)


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def _profile(
    member_id: uuid.UUID, external_id: str, name: str, status: MemberStatus, birthday: date | None
) -> dict[str, object]:
    return {
        "member_id": member_id,
        "external_id": external_id,
        "email": None,
        "display_name": name,
        "birthday": birthday,
        "locale": None,
        "time_zone": None,
        "traits": {},
        "interests": [],
        "status": status,
    }


def created(
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    hours: int,
    name: str,
    external_id: str,
    birthday: date | None = None,
) -> MemberCreated:
    profile = _profile(member_id, external_id, name, MemberStatus.ACTIVE, birthday)
    return MemberCreated(
        brand_id=brand_id, occurred_at=at(hours), data=MemberCreatedData.model_validate(profile)
    )


def updated(
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    hours: int,
    name: str,
    external_id: str,
    status: MemberStatus = MemberStatus.ACTIVE,
    birthday: date | None = None,
) -> MemberUpdated:
    profile = _profile(member_id, external_id, name, status, birthday)
    return MemberUpdated(
        brand_id=brand_id,
        occurred_at=at(hours),
        data=MemberUpdatedData.model_validate({**profile, "changed": ["display_name"]}),
    )


def erased(brand_id: uuid.UUID, member_id: uuid.UUID, hours: int) -> MemberErased:
    return MemberErased(
        brand_id=brand_id,
        occurred_at=at(hours),
        data=MemberErasedData(member_id=member_id, erased_at=at(hours)),
    )


def tier_changed(
    brand_id: uuid.UUID, member_id: uuid.UUID, hours: int, tier: str | None
) -> TierChanged:
    return TierChanged(
        brand_id=brand_id,
        occurred_at=at(hours),
        data=TierChangedData(
            member_id=member_id,
            from_tier_id=None,
            from_tier=None,
            to_tier_id=None if tier is None else uuid.uuid5(uuid.NAMESPACE_URL, tier),
            to_tier=tier,
            direction="up",
            reason="spend",
            window_spend_minor=50_000,
        ),
    )


def mixed_history(
    brand_id: uuid.UUID, tag: str
) -> tuple[list[uuid.UUID], list[Event], list[Event]]:
    """Six members' ids, the events that came before (one member already known), and a batch
    mixing every kind of event in the orders that matter. `tag` keeps external ids unique when
    the same history is built twice in one brand."""
    m = [new_id() for _ in range(6)]

    def ext(i: int) -> str:
        return f"{tag}-{i}"

    before: list[Event] = [created(brand_id, m[4], -10, "Known", ext(4))]
    batch: list[Event] = [
        # Created then updated in one batch: the update wins, the join date is the creation's.
        created(brand_id, m[0], 0, "Ada", ext(0)),
        tier_changed(brand_id, m[1], 0, "Gold"),  # before the member is known
        created(brand_id, m[3], 0, "Cy", ext(3)),
        created(brand_id, m[5], 0, "Eve", ext(5)),
        updated(brand_id, m[0], 1, "Ada L.", ext(0), MemberStatus.SUSPENDED, date(1990, 5, 17)),
        updated(brand_id, m[1], 1, "Bo", ext(1)),  # no member.created: joins at the tier change
        tier_changed(brand_id, m[2], 1, "Silver"),
        created(brand_id, m[2], 2, "Di", ext(2)),  # created after its tier change: joins now
        updated(brand_id, m[4], 2, "Known Again", ext(4), birthday=date(1985, 1, 2)),
        tier_changed(brand_id, m[4], 2, "Gold"),
        erased(brand_id, m[3], 3),
        tier_changed(brand_id, m[3], 4, "Bronze"),
        tier_changed(brand_id, m[4], 4, None),  # the last tier change wins, even to no tier
        created(brand_id, m[5], 5, "Eve 2", ext(5)),  # created twice: the last one counts
    ]
    return m, before, batch
