"""Tables of experiences (the Airbnb Experiences pattern): experiences, their sessions, the
bookings and waitlist places on a session, and the reviews attendees leave afterwards."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.community.models import Base, brand_column, created_column, uuid_pk
from services.kernel.db import text_enum


class ExperienceKind(StrEnum):
    MASTERCLASS = "masterclass"
    WORKSHOP = "workshop"
    STORE_EVENT = "store_event"
    MEETUP = "meetup"


class HostKind(StrEnum):
    BRAND = "brand"  # created by the brand's staff
    MEMBER = "member"  # created by a member with the `host_experiences` ability


class Experience(Base):
    """What is on offer (a masterclass, a store event, a meetup); members book its sessions."""

    __tablename__ = "experiences"
    __table_args__ = (
        CheckConstraint(
            "(host_kind = 'member') = (host_member_id IS NOT NULL)", name="member_host_named"
        ),
        Index(None, "brand_id", "id"),
        Index("ix_experiences_tags", "tags", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    kind: Mapped[ExperienceKind] = mapped_column(text_enum(ExperienceKind, "experience_kind"))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    host_kind: Mapped[HostKind] = mapped_column(text_enum(HostKind, "host_kind"))
    host_member_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("members.member_id"))
    # The rating summary, kept by the statement that adds each review (one row, no aggregate).
    review_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rating_total: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()


class PlaceKind(StrEnum):
    ADDRESS = "address"
    ONLINE = "online"


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"  # by its host or staff: every booking was cancelled and refunded


class ExperienceSession(Base):
    """One occurrence of an experience, with its own place, capacity, price and booking rules.

    `seats_taken` counts the seats held by confirmed bookings and by bookings awaiting payment;
    the CHECK keeps it within capacity even if a rule were ever forgotten.
    """

    __tablename__ = "experience_sessions"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="time_order"),
        CheckConstraint("capacity >= 1", name="capacity_positive"),
        CheckConstraint("seats_taken BETWEEN 0 AND capacity", name="seats_within_capacity"),
        CheckConstraint(
            "max_seats_per_booking BETWEEN 1 AND capacity", name="max_seats_within_capacity"
        ),
        CheckConstraint("price_points IS NULL OR price_points > 0", name="price_positive"),
        CheckConstraint(
            "(place_kind = 'address') = (address IS NOT NULL) "
            "AND (place_kind = 'online') = (online_url IS NOT NULL)",
            name="place_given",
        ),
        Index(None, "brand_id", "starts_at", "id"),
        Index(None, "experience_id", "starts_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    experience_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiences.id"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    time_zone: Mapped[str] = mapped_column(Text)  # IANA, e.g. "Europe/Paris": for local display
    place_kind: Mapped[PlaceKind] = mapped_column(text_enum(PlaceKind, "place_kind"))
    address: Mapped[str | None] = mapped_column(Text)
    online_url: Mapped[str | None] = mapped_column(Text)
    capacity: Mapped[int] = mapped_column(Integer)
    seats_taken: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    price_points: Mapped[int | None] = mapped_column(Integer)
    max_seats_per_booking: Mapped[int] = mapped_column(SmallInteger, server_default=text("1"))
    # Before `general_booking_opens_at`, only members of these tiers may book.
    early_access_tier_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default="{}"
    )
    general_booking_opens_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancellation_cutoff_hours: Mapped[int] = mapped_column(Integer, server_default=text("24"))
    check_in_code: Mapped[str] = mapped_column(Text)
    # Arrival order on the waitlist: the last number handed out, taken under the row lock.
    waitlist_counter: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    status: Mapped[SessionStatus] = mapped_column(text_enum(SessionStatus, "session_status"))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()


class BookingStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"  # holds its seats until rewards answers
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"  # holds no seats; promoted in arrival order when seats free up
    CANCELLED = "cancelled"  # by the member, or with the session by its host or staff
    PAYMENT_DECLINED = "payment_declined"  # rewards refused the points
    PAYMENT_EXPIRED = "payment_expired"  # rewards did not answer in time


# A member has at most one booking in these states per session.
ACTIVE_STATUSES = (
    BookingStatus.AWAITING_PAYMENT,
    BookingStatus.CONFIRMED,
    BookingStatus.WAITLISTED,
)
HOLDING_STATUSES = (BookingStatus.AWAITING_PAYMENT, BookingStatus.CONFIRMED)


class CancelledBy(StrEnum):
    MEMBER = "member"
    HOST = "host"  # the session was cancelled by its host or by staff


class CheckInMethod(StrEnum):
    HOST = "host"
    STAFF = "staff"
    CODE = "code"  # the member typed the session's check-in code


class Booking(Base):
    """A member's seats on a session, or their place on its waitlist."""

    __tablename__ = "experience_bookings"
    __table_args__ = (
        CheckConstraint("seats >= 1", name="seats_positive"),
        CheckConstraint(
            "status <> 'waitlisted' OR waitlist_number IS NOT NULL", name="waitlist_numbered"
        ),
        # One live booking (or waitlist place) per member and session; cancelled ones may repeat.
        Index(
            "uq_experience_bookings_one_live",
            "session_id",
            "member_id",
            unique=True,
            postgresql_where=text("status IN ('awaiting_payment', 'confirmed', 'waitlisted')"),
        ),
        # The waitlist in arrival order.
        Index(
            "ix_experience_bookings_waitlist",
            "session_id",
            "waitlist_number",
            postgresql_where=text("status = 'waitlisted'"),
        ),
        # Payments rewards has not answered in time.
        Index(
            "ix_experience_bookings_payment_due",
            "payment_due_at",
            postgresql_where=text("status = 'awaiting_payment'"),
        ),
        Index(None, "member_id", "id"),
        Index(None, "session_id", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experience_sessions.id"))
    experience_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiences.id"))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    seats: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[BookingStatus] = mapped_column(text_enum(BookingStatus, "booking_status"))
    # Arrival order on the waitlist (kept after promotion, for the record).
    waitlist_number: Mapped[int | None] = mapped_column(Integer)
    promoted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # What the seats cost (price x seats at booking time), what rewards took, what it gave back.
    points: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    paid_points: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    refund_points: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    payment_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_by: Mapped[CancelledBy | None] = mapped_column(text_enum(CancelledBy, "cancelled_by"))
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    check_in_method: Mapped[CheckInMethod | None] = mapped_column(
        text_enum(CheckInMethod, "check_in_method")
    )
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()


class ExperienceReview(Base):
    """An attendee's rating (1-5) and words about a session they were checked in at."""

    __tablename__ = "experience_reviews"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        UniqueConstraint("session_id", "member_id"),
        Index(None, "experience_id", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    brand_id: Mapped[uuid.UUID] = brand_column()
    experience_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiences.id"))
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experience_sessions.id"))
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experience_bookings.id"))
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.member_id"))
    rating: Mapped[int] = mapped_column(SmallInteger)
    body: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = created_column()
