"""The events the members service publishes (`member.*`).

Created and updated events carry the member's current profile, so consumers (marketing's member
360, CRM webhooks) keep a copy without calling back. `member.erased` carries no personal data: it
only tells every service to forget the member.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal, Protocol

from pydantic import Field

from services.kernel.events import Event, EventData
from services.members.models import ConsentPurpose, MemberStatus


class MemberState(Protocol):
    """What events read from a member: the ORM model, or an import's lighter staged row."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def brand_id(self) -> uuid.UUID: ...
    @property
    def external_id(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...
    @property
    def display_name(self) -> str | None: ...
    @property
    def birthday(self) -> date | None: ...
    @property
    def locale(self) -> str | None: ...
    @property
    def time_zone(self) -> str | None: ...
    @property
    def traits(self) -> dict[str, Any]: ...
    @property
    def interests(self) -> list[str]: ...
    @property
    def status(self) -> MemberStatus: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


class MemberProfile(EventData):
    member_id: uuid.UUID
    external_id: str | None
    email: str | None
    display_name: str | None
    birthday: date | None
    locale: str | None
    time_zone: str | None
    traits: dict[str, Any]
    interests: list[str]
    status: MemberStatus

    @classmethod
    def fields_of(cls, member: MemberState) -> dict[str, Any]:
        return {
            "member_id": member.id,
            "external_id": member.external_id,
            "email": member.email,
            "display_name": member.display_name,
            "birthday": member.birthday,
            "locale": member.locale,
            "time_zone": member.time_zone,
            "traits": member.traits,
            "interests": member.interests,
            "status": member.status,
        }


class MemberCreatedData(MemberProfile):
    pass


class MemberCreated(Event):
    type: Literal["member.created"] = "member.created"
    version: Literal[1] = 1
    data: MemberCreatedData

    @classmethod
    def of(cls, member: MemberState) -> MemberCreated:
        return cls(
            brand_id=member.brand_id,
            subject_id=member.id,
            occurred_at=member.created_at,
            data=MemberCreatedData(**MemberProfile.fields_of(member)),
        )


class MemberUpdatedData(MemberProfile):
    changed: list[str] = Field(description="Names of the fields that changed (values are above).")


class MemberUpdated(Event):
    type: Literal["member.updated"] = "member.updated"
    version: Literal[1] = 1
    data: MemberUpdatedData

    @classmethod
    def of(cls, member: MemberState, changed: list[str]) -> MemberUpdated:
        return cls(
            brand_id=member.brand_id,
            subject_id=member.id,
            occurred_at=member.updated_at,
            data=MemberUpdatedData(**MemberProfile.fields_of(member), changed=changed),
        )


class MemberConsentChangedData(EventData):
    member_id: uuid.UUID
    external_id: str | None
    purpose: ConsentPurpose
    granted: bool
    source: str
    changed_at: datetime


class MemberConsentChanged(Event):
    type: Literal["member.consent_changed"] = "member.consent_changed"
    version: Literal[1] = 1
    data: MemberConsentChangedData


class MemberErasedData(EventData):
    member_id: uuid.UUID
    erased_at: datetime


class MemberErased(Event):
    type: Literal["member.erased"] = "member.erased"
    version: Literal[1] = 1
    data: MemberErasedData


MEMBER_EVENTS: tuple[type[Event], ...] = (
    MemberCreated,
    MemberUpdated,
    MemberConsentChanged,
    MemberErased,
)
