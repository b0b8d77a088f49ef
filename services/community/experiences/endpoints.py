"""REST for the community's experiences: hosting (staff or a member host), browsing, booking,
cancelling, check-in and reviews. The rules are in `service`, `bookings` and `attendance`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query, Request, Response
from pydantic import AwareDatetime

from services.community.access import CurrentMember, ReadingActor, ReadingMember, WritingActor
from services.community.experiences import attendance, bookings, service
from services.community.experiences.lookup import get_experience, session_and_experience
from services.community.experiences.models import BookingStatus, ExperienceKind
from services.community.experiences.repository import ExperienceFilters, SessionFilters
from services.community.experiences.schemas import (
    BookingCreate,
    BookingRead,
    CheckInCode,
    ExperienceCreate,
    ExperienceRead,
    ExperienceUpdate,
    RatingSummary,
    ReviewCreate,
    ReviewRead,
    SessionCancel,
    SessionCreate,
    SessionRead,
    SessionUpdate,
    normalise_tag,
)
from services.community.models import IDEMPOTENCY
from services.kernel.auth import MemberDep
from services.kernel.clock import utcnow
from services.kernel.db import SessionDep
from services.kernel.idempotency import (
    IdempotencyKeyHeader,
    RequiredIdempotencyKeyHeader,
    request_hash,
)
from services.kernel.pagination import OptionalIds, Page, PageDep
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: experiences"])

Tag = Annotated[str | None, Query(min_length=1, max_length=50)]

Responses = dict[int | str, dict[str, Any]]

_NOT_FOUND: Responses = {404: {"description": "ExperienceNotFound, MemberNotFound"}}
_SESSION_NOT_FOUND: Responses = {404: {"description": "SessionNotFound, MemberNotFound"}}
_MANAGE: Responses = {403: {"description": "NotTheHost, MemberSuspended"}}


# --- Experiences ------------------------------------------------------------------------------


@router.post(
    "/experiences",
    status_code=201,
    response_model=ExperienceRead,
    summary="Create an experience (staff host as the brand; members need the hosting ability)",
    responses={403: {"description": "TrustLevelTooLow, MemberSuspended"}},
)
async def create_experience(
    payload: ExperienceCreate, session: SessionDep, actor: WritingActor
) -> ExperienceRead:
    return ExperienceRead.of(await service.create_experience(session, actor, payload))


@router.get(
    "/experiences", response_model=Page[ExperienceRead], summary="Experiences, newest first"
)
async def list_experiences(
    session: SessionDep,
    actor: ReadingActor,
    page: PageDep,
    tag: Tag = None,
    kind: ExperienceKind | None = None,
    host_member_id: uuid.UUID | None = None,
    ids: OptionalIds = None,
) -> Page[ExperienceRead]:
    if ids is not None:
        found = await service.experiences_by_ids(session, actor.brand_id, ids)
        return Page[ExperienceRead](items=[ExperienceRead.of(e) for e in found])
    filters = ExperienceFilters(
        tag=normalise_tag(tag) if tag else None, kind=kind, host_member_id=host_member_id
    )
    rows = await service.list_experiences(session, actor.brand_id, filters, page)
    return Page[ExperienceRead].of(rows, page, key=lambda e: e.id, item=ExperienceRead.of)


@router.get(
    "/experiences/{experience_id}",
    response_model=ExperienceRead,
    summary="An experience, with its rating",
    responses=_NOT_FOUND,
)
async def get_experience_route(
    experience_id: uuid.UUID, session: SessionDep, actor: ReadingActor
) -> ExperienceRead:
    return ExperienceRead.of(await get_experience(session, actor.brand_id, experience_id))


@router.patch(
    "/experiences/{experience_id}",
    response_model=ExperienceRead,
    summary="Change an experience (its host or staff)",
    responses={**_NOT_FOUND, **_MANAGE},
)
async def update_experience(
    experience_id: uuid.UUID, payload: ExperienceUpdate, session: SessionDep, actor: WritingActor
) -> ExperienceRead:
    experience = await service.update_experience(session, actor, experience_id, payload)
    return ExperienceRead.of(experience)


@router.get(
    "/experiences/{experience_id}/rating",
    response_model=RatingSummary,
    summary="An experience's rating: count, average and reviews per rating",
    responses=_NOT_FOUND,
)
async def experience_rating(
    experience_id: uuid.UUID, session: SessionDep, actor: ReadingActor
) -> RatingSummary:
    return await service.rating_summary(session, actor.brand_id, experience_id)


@router.get(
    "/experiences/{experience_id}/reviews",
    response_model=Page[ReviewRead],
    summary="Reviews of an experience's sessions, newest first",
    responses=_NOT_FOUND,
)
async def experience_reviews(
    experience_id: uuid.UUID, session: SessionDep, actor: ReadingActor, page: PageDep
) -> Page[ReviewRead]:
    rows = await attendance.reviews(session, actor.brand_id, experience_id, page)
    return Page[ReviewRead].of(rows, page, key=lambda r: r.id, item=ReviewRead.of)


# --- Sessions ---------------------------------------------------------------------------------


@router.post(
    "/experiences/{experience_id}/sessions",
    status_code=201,
    response_model=SessionRead,
    summary="Schedule a session of an experience (its host or staff)",
    responses={
        **_NOT_FOUND,
        403: {"description": "NotTheHost, TrustLevelTooLow, MemberSuspended"},
        422: {"description": "ValidationError (an unknown time zone, a start in the past, ...)"},
    },
)
async def add_session(
    experience_id: uuid.UUID, payload: SessionCreate, session: SessionDep, actor: WritingActor
) -> SessionRead:
    row = await service.add_session(session, actor, experience_id, payload)
    return (await service.session_views(session, actor, [row]))[0]


@router.get(
    "/sessions",
    response_model=Page[SessionRead],
    summary="Upcoming sessions in start order (or sessions by id)",
)
async def browse_sessions(
    session: SessionDep,
    actor: ReadingActor,
    page: PageDep,
    starts_from: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="Sessions starting at or after this; default now."),
    ] = None,
    starts_before: Annotated[
        AwareDatetime | None,
        Query(alias="to", description="Sessions starting before this time."),
    ] = None,
    online: Annotated[
        bool | None, Query(description="true: online only; false: in person only.")
    ] = None,
    place: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Sessions whose address contains this text, any case (e.g. a city).",
        ),
    ] = None,
    tag: Tag = None,
    experience_id: uuid.UUID | None = None,
    include_cancelled: bool = False,
    ids: OptionalIds = None,
) -> Page[SessionRead]:
    if ids is not None:
        views = await service.sessions_by_ids(session, actor, ids)
        return Page[SessionRead](items=views)
    filters = SessionFilters(
        starts_from=starts_from or utcnow(),
        starts_before=starts_before,
        online=online,
        tag=normalise_tag(tag) if tag else None,
        experience_id=experience_id,
        include_cancelled=include_cancelled,
        place=(place.strip() or None) if place else None,
    )
    rows = await service.browse_sessions(session, actor.brand_id, filters, page)
    views = await service.session_views(session, actor, rows)
    return Page[SessionRead].of(views, page, key=lambda s: s.id, item=lambda s: s)


@router.get(
    "/sessions/{session_id}",
    response_model=SessionRead,
    summary="A session",
    responses=_SESSION_NOT_FOUND,
)
async def get_session(
    session_id: uuid.UUID, session: SessionDep, actor: ReadingActor
) -> SessionRead:
    row = await session_and_experience(session, actor.brand_id, session_id)
    return (await service.session_views(session, actor, [row]))[0]


@router.patch(
    "/sessions/{session_id}",
    response_model=SessionRead,
    summary="Change a session's place, capacity or booking rules (its host or staff)",
    responses={
        **_SESSION_NOT_FOUND,
        **_MANAGE,
        409: {"description": "SessionCancelled, SessionStarted, CapacityBelowBooked"},
    },
)
async def update_session(
    session_id: uuid.UUID, payload: SessionUpdate, session: SessionDep, actor: WritingActor
) -> SessionRead:
    row = await service.update_session(session, actor, session_id, payload)
    return (await service.session_views(session, actor, [row]))[0]


@router.post(
    "/sessions/{session_id}/cancel",
    response_model=SessionRead,
    summary="Cancel a session: every booking is cancelled with a full refund (its host or staff)",
    responses={**_SESSION_NOT_FOUND, **_MANAGE, 409: {"description": "SessionStarted"}},
)
async def cancel_session(
    session_id: uuid.UUID, payload: SessionCancel, session: SessionDep, actor: WritingActor
) -> SessionRead:
    row = await bookings.cancel_session(session, actor, session_id, payload.reason)
    return (await service.session_views(session, actor, [row]))[0]


@router.get(
    "/sessions/{session_id}/bookings",
    response_model=Page[BookingRead],
    summary="A session's bookings and waitlist, oldest first (its host or staff)",
    responses={**_SESSION_NOT_FOUND, 403: {"description": "NotTheHost"}},
)
async def session_bookings(
    session_id: uuid.UUID,
    session: SessionDep,
    actor: ReadingActor,
    page: PageDep,
    status: BookingStatus | None = None,
) -> Page[BookingRead]:
    rows = await bookings.session_bookings(session, actor, session_id, page, status)
    views = await bookings.booking_views(session, rows)
    return Page[BookingRead].of(views, page, key=lambda b: b.id, item=lambda b: b)


# --- Booking ----------------------------------------------------------------------------------


@router.post(
    "/sessions/{session_id}/bookings",
    status_code=201,
    response_model=BookingRead,
    summary="Book seats (or join the waitlist of a full session)",
    responses={
        **_SESSION_NOT_FOUND,
        403: {"description": "EarlyAccessOnly, MemberSuspended"},
        409: {
            "description": "SessionCancelled, SessionStarted, AlreadyBooked, SessionFull, "
            "IdempotencyKeyReused"
        },
        422: {"description": "TooManySeats, ValidationError (a missing Idempotency-Key header)"},
    },
)
async def book(
    session_id: uuid.UUID,
    payload: BookingCreate,
    request: Request,
    session: SessionDep,
    principal: MemberDep,
    member: CurrentMember,
    idempotency_key: RequiredIdempotencyKeyHeader,
) -> Response:
    async def work() -> BookingRead:
        return await bookings.book(session, member, session_id, payload)

    return await IDEMPOTENCY.run(
        session,
        caller=principal,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


@router.get(
    "/me/bookings",
    response_model=Page[BookingRead],
    summary="My bookings and waitlist places, newest first",
)
async def my_bookings(
    session: SessionDep,
    member: ReadingMember,
    page: PageDep,
    status: BookingStatus | None = None,
) -> Page[BookingRead]:
    rows = await bookings.member_bookings(session, member, page, status)
    views = await bookings.booking_views(session, rows)
    return Page[BookingRead].of(views, page, key=lambda b: b.id, item=lambda b: b)


@router.get(
    "/bookings/{booking_id}",
    response_model=BookingRead,
    summary="A booking (members: their own; the host and staff: their sessions')",
    responses={404: {"description": "BookingNotFound"}},
)
async def get_booking(
    booking_id: uuid.UUID, session: SessionDep, actor: ReadingActor
) -> BookingRead:
    return await bookings.get_booking(session, actor, booking_id)


@router.post(
    "/bookings/{booking_id}/cancel",
    response_model=BookingRead,
    summary="Cancel my booking or waitlist place (points back before the cut-off only)",
    responses={
        404: {"description": "BookingNotFound"},
        409: {
            "description": "BookingNotActive, AlreadyCheckedIn, SessionStarted, "
            "IdempotencyKeyReused"
        },
    },
)
async def cancel_booking(
    booking_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: MemberDep,
    member: CurrentMember,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    # With a key, a retry after a lost answer gets the first answer instead of a 409
    # BookingNotActive for the booking it cancelled.
    async def work() -> BookingRead:
        return await bookings.cancel_booking(session, member, booking_id)

    return await IDEMPOTENCY.run(
        session,
        caller=principal,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, None),
        status_code=200,
        work=work,
    )


# --- Check-in and reviews ---------------------------------------------------------------------


@router.post(
    "/bookings/{booking_id}/check-in",
    response_model=BookingRead,
    summary="Check a guest in (the host or staff)",
    responses={
        404: {"description": "BookingNotFound"},
        **_MANAGE,
        409: {"description": "AlreadyCheckedIn, BookingNotConfirmed, CheckInClosed"},
    },
)
async def check_in_booking(
    booking_id: uuid.UUID, session: SessionDep, actor: WritingActor
) -> BookingRead:
    return BookingRead.of(await attendance.check_in_booking(session, actor, booking_id))


@router.post(
    "/sessions/{session_id}/check-in",
    response_model=BookingRead,
    summary="Check myself in with the code the host shows",
    responses={
        404: {"description": "SessionNotFound, BookingNotFound"},
        403: {"description": "WrongCheckInCode, MemberSuspended"},
        409: {"description": "AlreadyCheckedIn, BookingNotConfirmed, CheckInClosed"},
    },
)
async def check_in_with_code(
    session_id: uuid.UUID, payload: CheckInCode, session: SessionDep, member: CurrentMember
) -> BookingRead:
    booking = await attendance.check_in_with_code(session, member, session_id, payload.code)
    return BookingRead.of(booking)


@router.post(
    "/sessions/{session_id}/reviews",
    status_code=201,
    response_model=ReviewRead,
    summary="Review a session I attended (once, after it ends)",
    responses={
        **_SESSION_NOT_FOUND,
        403: {"description": "NotAnAttendee, MemberSuspended"},
        409: {"description": "SessionNotEnded, AlreadyReviewed"},
    },
)
async def review_session(
    session_id: uuid.UUID, payload: ReviewCreate, session: SessionDep, member: CurrentMember
) -> ReviewRead:
    return ReviewRead.of(await attendance.review(session, member, session_id, payload))
