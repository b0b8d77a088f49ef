"""Request and response bodies of the members API. Inputs refuse unknown fields."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError

from services.kernel.auth import Scope
from services.kernel.clock import utcnow
from services.kernel.schemas import INT64_MAX, Input, is_int64
from services.members.models import ConsentPurpose, MemberStatus

MAX_EXTERNAL_ID = 255
MAX_TRAITS = 100
MAX_TRAIT_KEY = 64
MAX_TRAIT_TEXT = 1_000
MAX_TRAIT_LIST = 100
MAX_INTERESTS = 50
MAX_INTEREST = 64
EARLIEST_BIRTHDAY = date(1900, 1, 1)

_TRAIT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
# RFC 5322 dot-atom, the plain ASCII local part nearly every address has.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- Field types ----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _time_zone(value: str) -> str:
    # Membership in the IANA list, rather than ZoneInfo(value), also refuses file-system paths.
    if value not in _time_zones():
        raise ValueError("must be an IANA time zone such as Europe/Paris")
    return value


def _locale(value: str) -> str:
    """BCP 47-ish: `en`, `en-GB`, `zh-Hant-TW`; returned in canonical case with hyphens."""
    if not _LOCALE.match(value):
        raise ValueError("must be a language tag such as en or en-GB")
    language, *rest = value.replace("_", "-").split("-")
    parts = [language.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            parts.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())  # script
        else:
            parts.append(part.lower())
    return "-".join(parts)


def _birthday(value: date) -> date:
    # The latest date anywhere on Earth (UTC+14), so a birthday that is today somewhere is valid.
    latest = (utcnow() + timedelta(hours=14)).date()
    if value > latest:
        raise ValueError("must not be in the future")
    if value < EARLIEST_BIRTHDAY:
        raise ValueError("must not be before 1900-01-01")
    return value


@lru_cache(maxsize=4096)
def _email_domain(domain: str) -> str | None:
    """The normalised domain, or None if invalid: checked once per domain, by EmailStr's code."""
    try:
        return validate_email(f"a@{domain}")[1].rpartition("@")[2]
    except PydanticCustomError:
        return None


def _email(value: str) -> str:
    """Exactly pydantic's EmailStr validation (email-validator), lower-cased.

    Full validation costs tens of microseconds, most of an import's time, and nearly all of it goes
    on the domain. So a plain ASCII dot-atom address (the local part rules email-validator applies
    to those) reuses the verdict on its domain; anything else takes the full path unchanged.
    """
    local, at, domain = value.rpartition("@")
    if (
        at
        and len(value) <= 254
        and len(local) <= 64
        and value.isascii()
        and _DOT_ATOM.fullmatch(local)
    ):
        normalised = _email_domain(domain)
        if normalised is not None:
            return f"{local}@{normalised}".lower()
    return validate_email(value)[1].lower()


def _interests(values: list[str]) -> list[str]:
    """Tags compare ignoring case and spacing: lower-cased, spaces collapsed, duplicates dropped."""
    seen: dict[str, None] = {}
    for value in values:
        tag = " ".join(value.split()).lower()
        if not tag:
            continue
        if len(tag) > MAX_INTEREST:
            raise ValueError(f"each interest must be at most {MAX_INTEREST} characters")
        seen.setdefault(tag, None)
    if len(seen) > MAX_INTERESTS:
        raise ValueError(f"at most {MAX_INTERESTS} interests")
    return list(seen)


def _trait_integers(traits: Any) -> Any:
    """Refuses an integer trait beyond 64 bits, which the services that read traits (events,
    segments, a CRM's JSON) cannot hold. Checked before the value is typed: a number type
    would otherwise take it as an approximate float, changing what was sent."""
    if isinstance(traits, dict):
        for key, value in traits.items():
            if type(value) is int and not is_int64(value):
                raise ValueError(
                    f"trait {key!r} is an integer beyond 64 bits; send it as text, or a number "
                    f"from -{INT64_MAX} to {INT64_MAX}"
                )
    return traits


def _trait_keys(traits: dict[str, Any]) -> dict[str, Any]:
    if len(traits) > MAX_TRAITS:
        raise ValueError(f"at most {MAX_TRAITS} traits")
    for key in traits:
        if len(key) > MAX_TRAIT_KEY or not _TRAIT_KEY.match(key):
            raise ValueError(
                f"trait name {key!r} must start with a letter and use letters, digits and _ . : -"
                f" (at most {MAX_TRAIT_KEY} characters)"
            )
    return traits


ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXTERNAL_ID)]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Email = Annotated[
    str, AfterValidator(_email), WithJsonSchema({"type": "string", "format": "email"})
]
Birthday = Annotated[date, AfterValidator(_birthday)]
Locale = Annotated[str, StringConstraints(max_length=35), AfterValidator(_locale)]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_time_zone)]
TraitText = Annotated[StrictStr, StringConstraints(max_length=MAX_TRAIT_TEXT)]
TraitList = Annotated[
    list[Annotated[StrictStr, StringConstraints(max_length=MAX_TRAIT_TEXT)]],
    Field(max_length=MAX_TRAIT_LIST),
]
# Strict, so "1" stays a string and `true` a boolean; bool comes before int for the same reason.
TraitNumber = Annotated[StrictFloat, Field(allow_inf_nan=False)]
TraitValue = StrictBool | StrictInt | TraitNumber | TraitText | TraitList
Traits = Annotated[
    dict[str, TraitValue], BeforeValidator(_trait_integers), AfterValidator(_trait_keys)
]
TraitChanges = Annotated[
    dict[str, TraitValue | None], BeforeValidator(_trait_integers), AfterValidator(_trait_keys)
]
# The raw list is bounded too, so normalising it is cheap whatever is sent.
Interests = Annotated[list[str], Field(max_length=MAX_INTERESTS * 4), AfterValidator(_interests)]
Source = Annotated[str, StringConstraints(min_length=1, max_length=200)]


# --- Members --------------------------------------------------------------------------------


class MemberCreate(Input):
    """A new member. Also the shape of one line of an import."""

    external_id: ExternalId = Field(description="The brand's own id for the member; unique.")
    email: Email | None = None
    display_name: DisplayName | None = None
    birthday: Birthday | None = None
    locale: Locale | None = None
    time_zone: TimeZone | None = None
    traits: Traits = Field(default_factory=dict)
    interests: Interests = Field(default_factory=list)


class MemberSelfUpdate(Input):
    """What members may change themselves. Omitted fields stay; null clears a field."""

    email: Email | None = None
    display_name: DisplayName | None = None
    birthday: Birthday | None = None
    locale: Locale | None = None
    time_zone: TimeZone | None = None
    interests: Interests | None = Field(default=None, description="Replaces the list.")

    @field_validator("interests", mode="after")
    @classmethod
    def _interests_not_null(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            raise ValueError("send [] to clear interests")
        return value


class MemberUpdate(MemberSelfUpdate):
    """Staff edits. Traits merge: a key set to null is removed, other keys are kept."""

    traits: TraitChanges | None = None

    @field_validator("traits", mode="after")
    @classmethod
    def _traits_not_null(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            raise ValueError("send an object; set a key to null to remove it")
        return value


class MemberRead(Output):
    id: uuid.UUID
    external_id: str | None
    email: str | None
    display_name: str | None
    birthday: date | None
    locale: str | None
    time_zone: str | None
    traits: dict[str, Any]
    interests: list[str]
    status: MemberStatus
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None


# --- Consents -------------------------------------------------------------------------------


class ConsentUpdate(Input):
    granted: StrictBool
    source: Source = Field(description="Where the choice was made, e.g. `checkout`, `crm`.")


class SelfConsentUpdate(Input):
    granted: StrictBool
    source: Source = "member"


class ConsentRead(Output):
    purpose: ConsentPurpose
    granted: bool
    source: str
    changed_at: datetime


class ConsentChangeRead(Output):
    purpose: ConsentPurpose
    granted: bool
    source: str | None
    changed_at: datetime


class ConsentList(BaseModel):
    items: list[ConsentRead]


# --- Imports --------------------------------------------------------------------------------


class ImportFailure(BaseModel):
    line: int = Field(description="1-based line in the file; a CSV header is line 1.")
    error: str = Field(description="A code: InvalidJSON, InvalidCSV, ValidationError, ...")
    detail: str


class ImportReport(BaseModel):
    total: int = Field(description="Records read (blank lines are skipped).")
    imported: int = Field(description="Members created (in a dry run: that would be created).")
    failed: list[ImportFailure]
    dry_run: bool = False


# --- Privacy --------------------------------------------------------------------------------


class MembersSection(BaseModel):
    profile: MemberRead
    consents: list[ConsentRead]
    consent_history: list[ConsentChangeRead]


class MemberExport(BaseModel):
    member_id: uuid.UUID
    exported_at: datetime
    members: MembersSection
    services: dict[str, dict[str, Any]] = Field(
        description="What every other service holds on the member, by service name."
    )


# --- API keys -------------------------------------------------------------------------------


class ApiKeyCreate(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], Field(min_length=1)]
    expires_at: AwareDatetime | None = None

    @field_validator("expires_at", mode="after")
    @classmethod
    def _in_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= utcnow():
            raise ValueError("must be in the future")
        return value


class ApiKeyRead(Output):
    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key itself. It is shown only this once; store it safely.")


class ApiKeyVerify(Input):
    key: Annotated[str, StringConstraints(min_length=1, max_length=512)]
