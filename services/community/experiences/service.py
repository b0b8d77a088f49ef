"""Experiences and their sessions: what the brand or a member hosts, and what members browse.
Functions here never commit.

**Hosts.** The brand's staff (`community:write`) host as the brand; a member hosts once their
trust level unlocks `host_experiences` (403 `TrustLevelTooLow` before), both to create an
experience and to schedule more sessions of it. An experience is managed by staff or its host
(403 `NotTheHost` for other members; ids of another brand are 404).

**Sessions** have a start and an end (UTC, shown also in their IANA time zone), a place (an
address, or an http(s) link shown only to the host, staff and confirmed guests), a capacity, an
optional price in points per seat, a limit of seats per booking, an optional early-access window
(before `general_booking_opens_at` only members whose tier is in `early_access_tier_ids` may
book) and a cancellation cut-off. A session must start in the future. Its times and price are
fixed once scheduled (bookings were made on them); place, capacity (never below the seats
taken; a larger one moves the waitlist up), seats per booking, early access and cut-off may
change until it starts. Each session gets a short check-in code, shown to the host and staff.

**Browsing** lists scheduled sessions in start order (then id), from now by default, filtered by
a start range, online or in person, text in the address (a city, a street), a tag of the
experience, or one experience.

**Reading by ids** (`experiences_by_ids`, `sessions_by_ids`) answers the objects of this brand
among the ids asked (at most 100, see `kernel.pagination.Ids`) in one statement, whatever their time
or status, as the caller may see them: the gateway resolves references (bookings,
recommendations) this way.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import Actor
from services.community.experiences import bookings
from services.community.experiences.access import may_manage, require_manager
from services.community.experiences.errors import (
    CapacityBelowBooked,
    SessionCancelled,
    SessionStarted,
)
from services.community.experiences.events import SessionData, SessionScheduled
from services.community.experiences.lookup import get_experience, session_and_experience
from services.community.experiences.models import (
    Experience,
    ExperienceSession,
    HostKind,
    PlaceKind,
    SessionStatus,
)
from services.community.experiences.repository import (
    ExperienceFilters,
    ExperienceRepository,
    SessionFilters,
)
from services.community.experiences.schemas import (
    AddressPlace,
    ExperienceCreate,
    ExperienceUpdate,
    OnlinePlace,
    RatingSummary,
    SessionCreate,
    SessionRead,
    SessionUpdate,
)
from services.community.members.abilities import Ability
from services.community.members.service import require_ability
from services.community.models import OUTBOX
from services.kernel.clock import utcnow
from services.kernel.errors import ValidationFailed
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest

# Unambiguous when read aloud or off a screen: no 0/O, 1/I/L.
CHECK_IN_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CHECK_IN_CODE_LENGTH = 6


def new_check_in_code() -> str:
    return "".join(secrets.choice(CHECK_IN_CODE_ALPHABET) for _ in range(CHECK_IN_CODE_LENGTH))


# --- Experiences ------------------------------------------------------------------------------


async def create_experience(
    session: AsyncSession, actor: Actor, payload: ExperienceCreate, now: datetime | None = None
) -> Experience:
    now = now or utcnow()
    if actor.member is not None:
        require_ability(actor.member, Ability.HOST_EXPERIENCES)
    experience = Experience(
        id=new_id(),
        brand_id=actor.brand_id,
        title=payload.title,
        description=payload.description,
        kind=payload.kind,
        tags=payload.tags,
        host_kind=HostKind.BRAND if actor.member is None else HostKind.MEMBER,
        host_member_id=None if actor.member is None else actor.member.member_id,
        review_count=0,
        rating_total=0,
        created_at=now,
        updated_at=now,
    )
    await ExperienceRepository(session).add(experience)
    return experience


async def update_experience(
    session: AsyncSession,
    actor: Actor,
    experience_id: uuid.UUID,
    payload: ExperienceUpdate,
    now: datetime | None = None,
) -> Experience:
    experience = await get_experience(session, actor.brand_id, experience_id)
    require_manager(actor, experience)
    for field in payload.model_fields_set:
        setattr(experience, field, getattr(payload, field))
    experience.updated_at = now or utcnow()
    await ExperienceRepository(session).flush()
    return experience


async def list_experiences(
    session: AsyncSession, brand_id: uuid.UUID, filters: ExperienceFilters, page: PageRequest
) -> Sequence[Experience]:
    return await ExperienceRepository(session).experiences(brand_id, filters, page)


async def experiences_by_ids(
    session: AsyncSession, brand_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> Sequence[Experience]:
    return await ExperienceRepository(session).experiences_by_ids(brand_id, list(set(ids)))


async def rating_summary(
    session: AsyncSession, brand_id: uuid.UUID, experience_id: uuid.UUID
) -> RatingSummary:
    experience = await get_experience(session, brand_id, experience_id)
    counts = await ExperienceRepository(session).rating_distribution(experience.id)
    total = sum(counts.values())
    average = round(sum(r * n for r, n in counts.items()) / total, 2) if total else None
    return RatingSummary(
        count=total,
        average=average,
        distribution={str(rating): counts.get(rating, 0) for rating in range(1, 6)},
    )


# --- Sessions ---------------------------------------------------------------------------------


def _set_place(row: ExperienceSession, place: AddressPlace | OnlinePlace) -> None:
    if isinstance(place, AddressPlace):
        row.place_kind, row.address, row.online_url = PlaceKind.ADDRESS, place.address, None
    else:
        row.place_kind, row.address, row.online_url = PlaceKind.ONLINE, None, str(place.url)


def session_data(row: ExperienceSession, experience: Experience) -> SessionData:
    return SessionData(
        session_id=row.id,
        experience_id=experience.id,
        title=experience.title,
        kind=experience.kind,
        tags=list(experience.tags),
        host_member_id=experience.host_member_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        time_zone=row.time_zone,
        online=row.place_kind == PlaceKind.ONLINE,
        capacity=row.capacity,
        price_points=row.price_points,
    )


def check_session_start(payload: SessionCreate, now: datetime) -> None:
    """A session is scheduled for the future (422 otherwise)."""
    if payload.starts_at <= now:
        raise ValidationFailed(
            [{"loc": ["body", "starts_at"], "msg": "must be in the future", "type": "value_error"}]
        )


def new_session(
    brand_id: uuid.UUID, experience: Experience, payload: SessionCreate, now: datetime
) -> ExperienceSession:
    """The row of a session scheduled at `now` (online and by the bulk loader)."""
    row = ExperienceSession(
        id=new_id(),
        brand_id=brand_id,
        experience_id=experience.id,
        starts_at=payload.starts_at,
        ends_at=payload.ends_at,
        time_zone=payload.time_zone,
        capacity=payload.capacity,
        seats_taken=0,
        price_points=payload.price_points,
        max_seats_per_booking=payload.max_seats_per_booking,
        early_access_tier_ids=payload.early_access_tier_ids,
        general_booking_opens_at=payload.general_booking_opens_at,
        cancellation_cutoff_hours=payload.cancellation_cutoff_hours,
        check_in_code=new_check_in_code(),
        waitlist_counter=0,
        status=SessionStatus.SCHEDULED,
        cancel_reason=None,
        cancelled_at=None,
        created_at=now,
        updated_at=now,
    )
    _set_place(row, payload.place)
    return row


def scheduled_event(
    row: ExperienceSession, experience: Experience, now: datetime
) -> SessionScheduled:
    return SessionScheduled(
        brand_id=row.brand_id,
        subject_id=experience.host_member_id,
        occurred_at=now,
        data=session_data(row, experience),
    )


async def add_session(
    session: AsyncSession,
    actor: Actor,
    experience_id: uuid.UUID,
    payload: SessionCreate,
    now: datetime | None = None,
) -> tuple[ExperienceSession, Experience]:
    now = now or utcnow()
    experience = await get_experience(session, actor.brand_id, experience_id)
    require_manager(actor, experience)
    if actor.member is not None:
        require_ability(actor.member, Ability.HOST_EXPERIENCES)
    check_session_start(payload, now)
    row = new_session(actor.brand_id, experience, payload, now)
    await ExperienceRepository(session).add(row)
    await OUTBOX.add(session, scheduled_event(row, experience, now))
    return row, experience


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed([{"loc": ["body", field], "msg": message, "type": "value_error"}])


async def update_session(
    session: AsyncSession,
    actor: Actor,
    session_id: uuid.UUID,
    payload: SessionUpdate,
    now: datetime | None = None,
) -> tuple[ExperienceSession, Experience]:
    now = now or utcnow()
    row, experience = await session_and_experience(session, actor.brand_id, session_id, lock=True)
    require_manager(actor, experience)
    if row.status == SessionStatus.CANCELLED:
        raise SessionCancelled()
    if row.starts_at <= now:
        raise SessionStarted(f"This session started at {row.starts_at.isoformat()}.")
    given = payload.model_fields_set
    capacity = payload.capacity if payload.capacity is not None else row.capacity
    max_seats = payload.max_seats_per_booking or row.max_seats_per_booking
    tiers = (
        payload.early_access_tier_ids
        if payload.early_access_tier_ids is not None
        else row.early_access_tier_ids
    )
    opens = (
        payload.general_booking_opens_at
        if "general_booking_opens_at" in given
        else row.general_booking_opens_at
    )
    if capacity < row.seats_taken:
        raise CapacityBelowBooked(
            f"{row.seats_taken} seats are booked; capacity cannot go below that."
        )
    if max_seats > capacity:
        raise _invalid("max_seats_per_booking", "cannot exceed capacity")
    if tiers and opens is None:
        raise _invalid("early_access_tier_ids", "need general_booking_opens_at")
    if opens is not None and opens >= row.starts_at:
        raise _invalid("general_booking_opens_at", "must be before starts_at")
    if payload.place is not None:
        _set_place(row, payload.place)
    if payload.cancellation_cutoff_hours is not None:
        row.cancellation_cutoff_hours = payload.cancellation_cutoff_hours
    row.capacity, row.max_seats_per_booking = capacity, max_seats
    row.early_access_tier_ids, row.general_booking_opens_at = list(tiers), opens
    row.updated_at = now
    await ExperienceRepository(session).flush()
    await bookings.promote_waitlist(session, row, experience, now)
    return row, experience


async def browse_sessions(
    session: AsyncSession, brand_id: uuid.UUID, filters: SessionFilters, page: PageRequest
) -> Sequence[tuple[ExperienceSession, Experience]]:
    return await ExperienceRepository(session).sessions(brand_id, filters, page)


async def sessions_by_ids(
    session: AsyncSession, actor: Actor, ids: Sequence[uuid.UUID]
) -> list[SessionRead]:
    """Sessions by id, shown as `session_views` shows them (the link and code are decided from
    the same row, in the same statement)."""
    rows = await ExperienceRepository(session).sessions_by_ids(
        actor.brand_id, list(set(ids)), actor.member_id
    )
    return [
        SessionRead.of(
            row,
            experience,
            show_link=may_manage(actor, experience) or confirmed,
            show_code=may_manage(actor, experience),
        )
        for row, experience, confirmed in rows
    ]


async def session_views(
    session: AsyncSession,
    actor: Actor,
    rows: Sequence[tuple[ExperienceSession, Experience]],
) -> list[SessionRead]:
    """Sessions as this actor may see them: the online link for staff, the host and confirmed
    guests; the check-in code for staff and the host."""
    confirmed: set[uuid.UUID] = set()
    if actor.member is not None:
        confirmed = await ExperienceRepository(session).sessions_confirmed_for(
            actor.member.member_id, [row.id for row, _ in rows]
        )
    return [
        SessionRead.of(
            row,
            experience,
            show_link=may_manage(actor, experience) or row.id in confirmed,
            show_code=may_manage(actor, experience),
        )
        for row, experience in rows
    ]
