"""Experiences (the Airbnb Experiences pattern): what the brand or a member hosts, its sessions,
the member's bookings and waitlist places, and reviews; over the community's REST API.

Experiences and sessions are read by id through the community's batch reads (kinds "experience"
and "session"), so a list of bookings or recommendations that each point at one costs one call
for the lot. The mutations are in `experiences_mutations`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import Enum
from typing import Annotated, Any

import strawberry

from services.gateway.calls import load, read, read_connection, read_or_none
from services.gateway.connections import Connection, PageArgs, page_args
from services.gateway.context import GatewayContext, GatewayInfo
from services.gateway.ids import Node, encode_global_id, register_node
from services.gateway.json_values import maybe_iso, maybe_when, when
from services.gateway.loaders import BatchRead, register_batch_read
from services.gateway.schema.community_types import Member, member_of

register_batch_read("experience", BatchRead("community", "/community/v1/experiences"))
register_batch_read("session", BatchRead("community", "/community/v1/sessions"))


# --- Experiences ------------------------------------------------------------------------------


@strawberry.enum(description="What sort of experience it is.")
class ExperienceKind(Enum):
    MASTERCLASS = "masterclass"
    WORKSHOP = "workshop"
    STORE_EVENT = "store_event"
    MEETUP = "meetup"


@strawberry.enum(description="Who hosts an experience.")
class HostKind(Enum):
    BRAND = "brand"
    MEMBER = "member"


@strawberry.type(description="Who hosts an experience: the brand, or one of its members.")
class ExperienceHost:
    kind: HostKind
    member: Member | None = strawberry.field(description="The hosting member; null: the brand.")

    @strawberry.field(description="True when the member calling is the host.")
    def is_you(self, info: GatewayInfo) -> bool:
        return self.member is not None and self.member.member_id == info.context.member.member_id


@strawberry.type(description="How many seats of a session have one rating.")
class RatingCount:
    rating: int
    count: int


@strawberry.type(description="What attendees made of an experience.")
class ExperienceRating:
    experience_id: strawberry.Private[uuid.UUID]
    count: int = strawberry.field(description="How many reviews.")
    average: float | None = strawberry.field(description="Mean rating, 2 decimals; null: none.")

    @strawberry.field(description="Reviews per rating, 1 to 5.")
    async def distribution(self, info: GatewayInfo) -> list[RatingCount]:
        summary = await read(
            info.context, "community", f"/community/v1/experiences/{self.experience_id}/rating"
        )
        counts: dict[str, int] = summary["distribution"]
        return [RatingCount(rating=int(r), count=n) for r, n in sorted(counts.items())]


@strawberry.type(description="An attendee's review of a session of an experience.")
class ExperienceReview:
    session_id: strawberry.Private[uuid.UUID]
    rating: int = strawberry.field(description="1 to 5.")
    text: str
    reviewer: Member
    created_at: dt.datetime

    @strawberry.field(description="The session reviewed.")
    async def session(self, info: GatewayInfo) -> Session | None:
        data = await load(info.context, "session", self.session_id)
        return session_from_json(data) if data is not None else None


def review_from_json(data: dict[str, Any]) -> ExperienceReview:
    return ExperienceReview(
        session_id=uuid.UUID(data["session_id"]),
        rating=data["rating"],
        text=data["body"],
        reviewer=member_of(data["member_id"], named=False),
        created_at=when(data["created_at"]),
    )


@strawberry.type(description="Something the brand or a member hosts; members book its sessions.")
class Experience(Node):
    raw_id: strawberry.Private[uuid.UUID]
    title: str
    description: str
    kind: ExperienceKind
    tags: list[str]
    host: ExperienceHost
    rating: ExperienceRating
    created_at: dt.datetime

    @strawberry.field(description="Its sessions in start order, upcoming ones by default.")
    async def sessions(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        from_: Annotated[
            dt.datetime | None,
            strawberry.argument(name="from", description="Starting at or after this; default now."),
        ] = None,
        to: Annotated[
            dt.datetime | None, strawberry.argument(description="Starting before this.")
        ] = None,
        online: Annotated[
            bool | None,
            strawberry.argument(description="true: online only; false: in person only."),
        ] = None,
    ) -> Connection[Session]:
        args = page_args(first, after, last, before)
        filters = {
            "experience_id": self.raw_id,
            "from": maybe_iso(from_),
            "to": maybe_iso(to),
            "online": online,
        }
        return await sessions_page(info.context, args, filters)

    @strawberry.field(description="Attendees' reviews, newest first.")
    async def reviews(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ExperienceReview]:
        args = page_args(first, after, last, before)
        return await read_connection(
            info.context,
            "community",
            f"/community/v1/experiences/{self.raw_id}/reviews",
            args,
            review_from_json,
        )


def experience_from_json(data: dict[str, Any]) -> Experience:
    """An experience from the community's JSON (the recommendations part loads experiences with
    `context.loaders.by_id("experience")` and builds them with this)."""
    raw_id = uuid.UUID(data["id"])
    host = data.get("host_member_id")
    return Experience(
        id=encode_global_id("Experience", raw_id),
        raw_id=raw_id,
        title=data["title"],
        description=data["description"],
        kind=ExperienceKind(data["kind"]),
        tags=list(data["tags"]),
        host=ExperienceHost(
            kind=HostKind(data["host_kind"]),
            member=member_of(host, named=False) if host is not None else None,
        ),
        rating=ExperienceRating(
            experience_id=raw_id, count=data["review_count"], average=data["average_rating"]
        ),
        created_at=when(data["created_at"]),
    )


async def experience_node(context: GatewayContext, raw_id: uuid.UUID) -> Experience | None:
    data = await load(context, "experience", raw_id)
    return experience_from_json(data) if data is not None else None


# --- Sessions ---------------------------------------------------------------------------------


@strawberry.enum(description="Where a session takes place.")
class PlaceKind(Enum):
    ADDRESS = "address"
    ONLINE = "online"


@strawberry.enum(description="Whether a session is still on.")
class SessionStatus(Enum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


@strawberry.type(description="Where a session takes place: an address, or an online link.")
class SessionPlace:
    kind: PlaceKind
    address: str | None
    url: str | None = strawberry.field(
        description="The online link: shown to the host and to members with a confirmed "
        "booking; null for everyone else."
    )


@strawberry.enum(description="Where a booking stands.")
class BookingStatus(Enum):
    AWAITING_PAYMENT = "awaiting_payment"
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"
    PAYMENT_DECLINED = "payment_declined"
    PAYMENT_EXPIRED = "payment_expired"


@strawberry.type(description="One occurrence of an experience, with its place and seats.")
class Session(Node):
    raw_id: strawberry.Private[uuid.UUID]
    experience_id: strawberry.Private[uuid.UUID]
    title: str = strawberry.field(description="The experience's title.")
    starts_at: dt.datetime
    ends_at: dt.datetime
    time_zone: str = strawberry.field(description="IANA time zone the times are shown in.")
    local_starts_at: dt.datetime = strawberry.field(description="`startsAt` in `timeZone`.")
    local_ends_at: dt.datetime
    place: SessionPlace
    online: bool
    capacity: int
    seats_taken: int
    seats_left: int
    price_points: int | None = strawberry.field(description="Points per seat; null: free.")
    max_seats_per_booking: int
    general_booking_opens_at: dt.datetime | None = strawberry.field(
        description="Before this, only early-access tiers may book."
    )
    cancellation_cutoff_hours: int = strawberry.field(
        description="Cancel at least this many hours before the start to get the points back."
    )
    status: SessionStatus
    cancel_reason: str | None
    check_in_code: str | None = strawberry.field(
        description="The code guests type to check in: shown to the host only."
    )

    @strawberry.field(description="The experience this is a session of.")
    async def experience(self, info: GatewayInfo) -> Experience | None:
        return await experience_node(info.context, self.experience_id)

    @strawberry.field(description="Its bookings and waitlist, oldest first: for its host only.")
    async def bookings(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        status: BookingStatus | None = None,
    ) -> Connection[Booking]:
        args = page_args(first, after, last, before)
        params = {"status": status.value if status else None}
        return await read_connection(
            info.context,
            "community",
            f"/community/v1/sessions/{self.raw_id}/bookings",
            args,
            booking_from_json,
            params=params,
        )


def session_from_json(data: dict[str, Any]) -> Session:
    raw_id = uuid.UUID(data["id"])
    place = data["place"]
    return Session(
        id=encode_global_id("Session", raw_id),
        raw_id=raw_id,
        experience_id=uuid.UUID(data["experience_id"]),
        title=data["title"],
        starts_at=when(data["starts_at"]),
        ends_at=when(data["ends_at"]),
        time_zone=data["time_zone"],
        local_starts_at=when(data["local_starts_at"]),
        local_ends_at=when(data["local_ends_at"]),
        place=SessionPlace(
            kind=PlaceKind(place["kind"]), address=place["address"], url=place["url"]
        ),
        online=place["kind"] == PlaceKind.ONLINE.value,
        capacity=data["capacity"],
        seats_taken=data["seats_taken"],
        seats_left=data["seats_left"],
        price_points=data["price_points"],
        max_seats_per_booking=data["max_seats_per_booking"],
        general_booking_opens_at=maybe_when(data["general_booking_opens_at"]),
        cancellation_cutoff_hours=data["cancellation_cutoff_hours"],
        status=SessionStatus(data["status"]),
        cancel_reason=data["cancel_reason"],
        check_in_code=data["check_in_code"],
    )


async def session_node(context: GatewayContext, raw_id: uuid.UUID) -> Session | None:
    data = await load(context, "session", raw_id)
    return session_from_json(data) if data is not None else None


async def sessions_page(
    context: GatewayContext, args: PageArgs, filters: dict[str, Any]
) -> Connection[Session]:
    return await read_connection(
        context, "community", "/community/v1/sessions", args, session_from_json, params=filters
    )


# --- Bookings ---------------------------------------------------------------------------------


@strawberry.type(description="A member's seats on a session, or their place on its waitlist.")
class Booking(Node):
    raw_id: strawberry.Private[uuid.UUID]
    session_id: strawberry.Private[uuid.UUID]
    experience_id: strawberry.Private[uuid.UUID]
    guest: Member = strawberry.field(description="The member who booked.")
    seats: int
    status: BookingStatus
    waitlist_position: int | None = strawberry.field(
        description="1 is next in line; null when not waiting."
    )
    promoted_from_waitlist: bool
    points: int = strawberry.field(description="What the seats cost in points (0: free).")
    paid_points: int
    refund_points: int
    payment_due_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    checked_in_at: dt.datetime | None
    created_at: dt.datetime

    @strawberry.field(description="The session booked.")
    async def session(self, info: GatewayInfo) -> Session | None:
        return await session_node(info.context, self.session_id)

    @strawberry.field(description="The experience the session is of.")
    async def experience(self, info: GatewayInfo) -> Experience | None:
        return await experience_node(info.context, self.experience_id)


def booking_from_json(data: dict[str, Any]) -> Booking:
    raw_id = uuid.UUID(data["id"])
    return Booking(
        id=encode_global_id("Booking", raw_id),
        raw_id=raw_id,
        session_id=uuid.UUID(data["session_id"]),
        experience_id=uuid.UUID(data["experience_id"]),
        guest=member_of(data["member_id"], named=False),
        seats=data["seats"],
        status=BookingStatus(data["status"]),
        waitlist_position=data["waitlist_position"],
        promoted_from_waitlist=data["promoted_from_waitlist"],
        points=data["points"],
        paid_points=data["paid_points"],
        refund_points=data["refund_points"],
        payment_due_at=maybe_when(data["payment_due_at"]),
        confirmed_at=maybe_when(data["confirmed_at"]),
        cancelled_at=maybe_when(data["cancelled_at"]),
        checked_in_at=maybe_when(data["checked_in_at"]),
        created_at=when(data["created_at"]),
    )


async def booking_node(context: GatewayContext, raw_id: uuid.UUID) -> Booking | None:
    # Bookings are never listed by id, so no batch read: one GET, shared within the request.
    data = await read_or_none(context, "community", f"/community/v1/bookings/{raw_id}")
    return booking_from_json(data) if data is not None else None


register_node("Experience", experience_node)
register_node("Session", session_node)
register_node("Booking", booking_node)


async def _me_bookings(
    info: GatewayInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    status: BookingStatus | None = None,
) -> Connection[Booking]:
    args = page_args(first, after, last, before)
    params = {"status": status.value if status else None}
    return await read_connection(
        info.context,
        "community",
        "/community/v1/me/bookings",
        args,
        booking_from_json,
        params=params,
    )


# Mounted on `Me` by `schema.me`.
bookings_field = strawberry.field(
    resolver=_me_bookings,
    description="My bookings and waitlist places, newest first; `status` keeps one kind.",
)


# --- Queries ----------------------------------------------------------------------------------


@strawberry.input(description="Which experiences to list.")
class ExperienceFilter:
    tag: str | None = None
    kind: ExperienceKind | None = None
    hosted_by_me: bool | None = strawberry.field(
        default=None, description="true: only the experiences I host."
    )


@strawberry.input(description="Which sessions to list: by start time, place and tag.")
class SessionFilter:
    from_: dt.datetime | None = strawberry.field(
        name="from", default=None, description="Starting at or after this; default now."
    )
    to: dt.datetime | None = strawberry.field(default=None, description="Starting before this.")
    online: bool | None = strawberry.field(
        default=None, description="true: online only; false: in person only."
    )
    place: str | None = strawberry.field(
        default=None, description="Text the address contains, any case (e.g. a city)."
    )
    tag: str | None = strawberry.field(default=None, description="A tag of the experience.")


@strawberry.type
class ExperiencesQuery:
    @strawberry.field(description="The brand's experiences, newest first.")
    async def experiences(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ExperienceFilter | None = None,
    ) -> Connection[Experience]:
        args = page_args(first, after, last, before)
        chosen = filter or ExperienceFilter()
        member_id = info.context.member.member_id
        params = {
            "tag": chosen.tag,
            "kind": chosen.kind.value if chosen.kind else None,
            "host_member_id": member_id if chosen.hosted_by_me else None,
        }
        return await read_connection(
            info.context,
            "community",
            "/community/v1/experiences",
            args,
            experience_from_json,
            params=params,
        )

    @strawberry.field(
        description="Sessions of every experience in start order, upcoming by default."
    )
    async def sessions(
        self,
        info: GatewayInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: SessionFilter | None = None,
    ) -> Connection[Session]:
        args = page_args(first, after, last, before)
        chosen = filter or SessionFilter()
        filters = {
            "from": maybe_iso(chosen.from_),
            "to": maybe_iso(chosen.to),
            "online": chosen.online,
            "place": chosen.place,
            "tag": chosen.tag,
        }
        return await sessions_page(info.context, args, filters)
