"""Pydantic I/O of experiences, sessions, bookings and reviews. Inputs refuse unknown fields;
counts and points are strict integers (`"5"` and `5.0` are refused, not coerced)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.community.experiences.models import (
    Booking,
    BookingStatus,
    CancelledBy,
    CheckInMethod,
    Experience,
    ExperienceKind,
    ExperienceReview,
    ExperienceSession,
    HostKind,
    PlaceKind,
    SessionStatus,
)
from services.kernel.schemas import Input, UtcDatetime

MAX_TAGS = 20
MAX_TAG = 50
MAX_TIERS = 50
MAX_CAPACITY = 10_000
MAX_SEATS_PER_BOOKING = 100
# Per seat: with at most 100 seats a booking's points stay far inside a 32-bit integer.
MAX_PRICE_POINTS = 1_000_000
MAX_CUTOFF_HOURS = 24 * 30


def _tags(values: list[str]) -> list[str]:
    """Tags compare ignoring case and spacing: lower-cased, spaces collapsed, duplicates dropped."""
    seen: dict[str, None] = {}
    for value in values:
        tag = " ".join(value.split()).lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG:
            raise ValueError(f"each tag must be at most {MAX_TAG} characters")
        seen.setdefault(tag, None)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return list(seen)


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/Paris')") from exc
    return value


def normalise_tag(value: str) -> str:
    return " ".join(value.split()).lower()


Title = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=10_000)]
Tags = Annotated[list[str], Field(max_length=MAX_TAGS * 4), AfterValidator(_tags)]
TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_time_zone),
    Field(description="An IANA time zone, e.g. `Europe/Paris`: how the session's times are shown."),
]
TierIds = Annotated[
    list[uuid.UUID],
    Field(
        max_length=MAX_TIERS,
        description="Tiers whose members may book before `general_booking_opens_at`.",
    ),
    AfterValidator(lambda ids: list(dict.fromkeys(ids))),
]
Capacity = Annotated[StrictInt, Field(ge=1, le=MAX_CAPACITY, description="Seats in all.")]
MaxSeats = Annotated[
    StrictInt,
    Field(ge=1, le=MAX_SEATS_PER_BOOKING, description="Seats one booking may take (<= capacity)."),
]
Price = Annotated[
    StrictInt, Field(ge=1, le=MAX_PRICE_POINTS, description="Points per seat; null: free.")
]
CutoffHours = Annotated[
    StrictInt,
    Field(
        ge=0,
        le=MAX_CUTOFF_HOURS,
        description="Members who cancel at least this many hours before the start get their "
        "points back; later cancellations are allowed but refund nothing.",
    ),
]


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- Experiences ------------------------------------------------------------------------------


class ExperienceCreate(Input):
    """An experience; its sessions are added with `POST /experiences/{id}/sessions`."""

    title: Title
    description: Description = ""
    kind: ExperienceKind
    tags: Tags = Field(default_factory=list)


class ExperienceUpdate(Input):
    """Changes to an experience: omitted fields stay."""

    title: Title | None = None
    description: Description | None = None
    kind: ExperienceKind | None = None
    tags: Tags | None = None

    @field_validator("title", "description", "kind", "tags", mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; omit the field to keep it")
        return value


class ExperienceRead(Output):
    id: uuid.UUID
    title: str
    description: str
    kind: ExperienceKind
    tags: list[str]
    host_kind: HostKind
    host_member_id: uuid.UUID | None
    review_count: int
    average_rating: float | None = Field(description="Mean of the reviews' ratings, 2 decimals.")
    created_at: datetime

    @classmethod
    def of(cls, experience: Experience) -> ExperienceRead:
        average = (
            round(experience.rating_total / experience.review_count, 2)
            if experience.review_count
            else None
        )
        return cls(
            id=experience.id,
            title=experience.title,
            description=experience.description,
            kind=experience.kind,
            tags=list(experience.tags),
            host_kind=experience.host_kind,
            host_member_id=experience.host_member_id,
            review_count=experience.review_count,
            average_rating=average,
            created_at=experience.created_at,
        )


class RatingSummary(BaseModel):
    count: int
    average: float | None
    distribution: dict[str, int] = Field(description='Reviews per rating, "1" to "5".')


# --- Sessions ---------------------------------------------------------------------------------


class AddressPlace(Input):
    kind: Literal["address"] = "address"
    address: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class OnlinePlace(Input):
    kind: Literal["online"] = "online"
    url: HttpUrl = Field(description="An http or https link; shown to confirmed guests only.")

    @field_validator("url", mode="after")
    @classmethod
    def _short(cls, value: HttpUrl) -> HttpUrl:
        if len(str(value)) > 2_000:
            raise ValueError("must be at most 2000 characters")
        return value


Place = Annotated[AddressPlace | OnlinePlace, Field(discriminator="kind")]


class _EarlyAccess(Input):
    @model_validator(mode="after")
    def _early_access_needs_an_opening(self) -> Self:
        tiers = getattr(self, "early_access_tier_ids", None)
        if tiers and getattr(self, "general_booking_opens_at", None) is None:
            raise ValueError("early_access_tier_ids need general_booking_opens_at")
        return self


class SessionCreate(_EarlyAccess):
    """A session of an experience. `starts_at` must be in the future and before `ends_at`."""

    starts_at: UtcDatetime
    ends_at: UtcDatetime
    time_zone: TimeZone
    place: Place
    capacity: Capacity
    price_points: Price | None = None
    max_seats_per_booking: MaxSeats = 1
    early_access_tier_ids: TierIds = Field(default_factory=list)
    general_booking_opens_at: UtcDatetime | None = Field(
        default=None,
        description="Before this time only members of `early_access_tier_ids` may book.",
    )
    cancellation_cutoff_hours: CutoffHours = 24

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.max_seats_per_booking > self.capacity:
            raise ValueError("max_seats_per_booking cannot exceed capacity")
        opens = self.general_booking_opens_at
        if opens is not None and opens >= self.starts_at:
            raise ValueError("general_booking_opens_at must be before starts_at")
        return self


class SessionUpdate(_EarlyAccess):
    """Changes to a session: omitted fields stay, null clears `general_booking_opens_at`.

    Times and price are fixed once a session is scheduled (bookings were made on them): cancel
    the session and schedule another instead. A larger capacity moves the waitlist up at once.
    """

    place: Place | None = None
    capacity: Capacity | None = None
    max_seats_per_booking: MaxSeats | None = None
    early_access_tier_ids: TierIds | None = None
    general_booking_opens_at: UtcDatetime | None = None
    cancellation_cutoff_hours: CutoffHours | None = None

    @field_validator(
        "place",
        "capacity",
        "max_seats_per_booking",
        "early_access_tier_ids",
        "cancellation_cutoff_hours",
        mode="after",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; omit the field to keep it")
        return value


class SessionCancel(Input):
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class PlaceRead(BaseModel):
    kind: PlaceKind
    address: str | None
    url: str | None = Field(
        description="The online link: shown to the host, staff and members with a confirmed "
        "booking; null for everyone else."
    )


class SessionRead(BaseModel):
    id: uuid.UUID
    experience_id: uuid.UUID
    title: str
    kind: ExperienceKind
    tags: list[str]
    host_kind: HostKind
    host_member_id: uuid.UUID | None
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    local_starts_at: str = Field(description="`starts_at` in the session's time zone (ISO 8601).")
    local_ends_at: str
    place: PlaceRead
    capacity: int
    seats_taken: int
    seats_left: int
    price_points: int | None
    max_seats_per_booking: int
    early_access_tier_ids: list[uuid.UUID]
    general_booking_opens_at: datetime | None
    cancellation_cutoff_hours: int
    status: SessionStatus
    cancel_reason: str | None
    check_in_code: str | None = Field(
        description="The code members type to check in: shown to the host and staff only."
    )

    @classmethod
    def of(
        cls,
        row: ExperienceSession,
        experience: Experience,
        *,
        show_link: bool,
        show_code: bool,
    ) -> SessionRead:
        zone = ZoneInfo(row.time_zone)
        return cls(
            id=row.id,
            experience_id=experience.id,
            title=experience.title,
            kind=experience.kind,
            tags=list(experience.tags),
            host_kind=experience.host_kind,
            host_member_id=experience.host_member_id,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            time_zone=row.time_zone,
            local_starts_at=row.starts_at.astimezone(zone).isoformat(),
            local_ends_at=row.ends_at.astimezone(zone).isoformat(),
            place=PlaceRead(
                kind=row.place_kind,
                address=row.address,
                url=row.online_url if show_link else None,
            ),
            capacity=row.capacity,
            seats_taken=row.seats_taken,
            seats_left=row.capacity - row.seats_taken,
            price_points=row.price_points,
            max_seats_per_booking=row.max_seats_per_booking,
            early_access_tier_ids=list(row.early_access_tier_ids),
            general_booking_opens_at=row.general_booking_opens_at,
            cancellation_cutoff_hours=row.cancellation_cutoff_hours,
            status=row.status,
            cancel_reason=row.cancel_reason,
            check_in_code=row.check_in_code if show_code else None,
        )


# --- Bookings ---------------------------------------------------------------------------------


class BookingCreate(Input):
    seats: StrictInt = Field(default=1, ge=1, le=MAX_SEATS_PER_BOOKING)
    join_waitlist: StrictBool = Field(
        default=True,
        description="When the session is full: true puts the member on its waitlist (201 with "
        "status `waitlisted` and a position); false refuses with 409 `SessionFull`.",
    )


class BookingRead(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    experience_id: uuid.UUID
    member_id: uuid.UUID
    seats: int
    status: BookingStatus
    waitlist_position: int | None = Field(description="1 is next in line; null when not waiting.")
    promoted_from_waitlist: bool
    points: int = Field(description="What the seats cost in points (0: free).")
    paid_points: int
    refund_points: int
    payment_due_at: datetime | None
    confirmed_at: datetime | None
    cancelled_at: datetime | None
    cancelled_by: CancelledBy | None
    checked_in_at: datetime | None
    check_in_method: CheckInMethod | None
    created_at: datetime

    @classmethod
    def of(cls, booking: Booking, position: int | None = None) -> BookingRead:
        return cls(
            id=booking.id,
            session_id=booking.session_id,
            experience_id=booking.experience_id,
            member_id=booking.member_id,
            seats=booking.seats,
            status=booking.status,
            waitlist_position=position if booking.status == BookingStatus.WAITLISTED else None,
            promoted_from_waitlist=booking.promoted,
            points=booking.points,
            paid_points=booking.paid_points,
            refund_points=booking.refund_points,
            payment_due_at=booking.payment_due_at,
            confirmed_at=booking.confirmed_at,
            cancelled_at=booking.cancelled_at,
            cancelled_by=booking.cancelled_by,
            checked_in_at=booking.checked_in_at,
            check_in_method=booking.check_in_method,
            created_at=booking.created_at,
        )


class CheckInCode(Input):
    code: Annotated[str, StringConstraints(min_length=1, max_length=20)]


# --- Reviews ----------------------------------------------------------------------------------


class ReviewCreate(Input):
    rating: StrictInt = Field(ge=1, le=5)
    body: Annotated[str, StringConstraints(max_length=5_000)] = ""


class ReviewRead(Output):
    id: uuid.UUID
    experience_id: uuid.UUID
    session_id: uuid.UUID
    member_id: uuid.UUID
    rating: int
    body: str
    created_at: datetime

    @classmethod
    def of(cls, review: ExperienceReview) -> ReviewRead:
        return cls.model_validate(review)
