"""The members service's rules. Functions here never commit: the caller's boundary does.

Every function that touches a brand's data takes the brand id and passes it to the repository, so
nothing reaches another brand's rows: a member or key of another brand is simply not found.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import (
    ALL_SCOPES,
    ApiKeyLookup,
    ApiKeyRecord,
    cache_api_key_record,
    format_api_key,
    hash_api_key_secret,
    parse_api_key,
)
from services.kernel.clients import ServiceClient
from services.kernel.clock import utcnow
from services.kernel.db import Database, release_connection
from services.kernel.errors import ValidationFailed
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest
from services.members.errors import (
    ApiKeyNotFound,
    DuplicateExternalId,
    MemberErased,
    MemberGone,
    MemberNotFound,
    MemberSuspended,
)
from services.members.events import (
    MemberConsentChanged,
    MemberConsentChangedData,
    MemberCreated,
    MemberErasedData,
    MemberProfile,
    MemberUpdated,
)
from services.members.events import MemberErased as MemberErasedEvent
from services.members.importing import LineError, parse_import
from services.members.models import (
    OUTBOX,
    ApiKey,
    Brand,
    Consent,
    ConsentChange,
    ConsentPurpose,
    Member,
    MemberStatus,
)
from services.members.repository import (
    ApiKeyRepository,
    BrandRepository,
    ConsentRepository,
    ErasureRepository,
    MemberFilters,
    MemberImportRepository,
    MemberRepository,
    StagedMember,
)
from services.members.schemas import (
    MAX_TRAITS,
    ApiKeyCreate,
    ConsentChangeRead,
    ConsentRead,
    ImportFailure,
    ImportReport,
    MemberCreate,
    MemberExport,
    MemberRead,
    MemberSelfUpdate,
    MembersSection,
    MemberUpdate,
)

# Lines validated and written per step of an import: large enough for COPY to pay off, small
# enough that memory stays flat. Read at call time, so tests can make it small.
IMPORT_BATCH_LINES = 5_000

ERASURE_SOURCE = "erasure"


# --- Brands ---------------------------------------------------------------------------------


async def create_brand(session: AsyncSession, name: str) -> tuple[Brand, str]:
    """A new brand and its first admin API key (every scope); returns the key in plain text."""
    brand = Brand(id=new_id(), name=name, created_at=utcnow())
    await BrandRepository(session).add(brand)
    _, key = await _new_api_key(session, brand.id, "Admin", ALL_SCOPES, None)
    return brand, key


async def get_brand(session: AsyncSession, brand_id: uuid.UUID) -> Brand | None:
    return await BrandRepository(session).get(brand_id)


async def brands_named(session: AsyncSession, name: str) -> Sequence[Brand]:
    """Brands with exactly this name, oldest first (names are not unique)."""
    return await BrandRepository(session).named(name)


async def brand_has_members(session: AsyncSession, brand_id: uuid.UUID) -> bool:
    return await MemberRepository(session).any_in_brand(brand_id)


# --- Members --------------------------------------------------------------------------------


def _member_values(brand_id: uuid.UUID, payload: MemberCreate, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "brand_id": brand_id,
        **payload.model_dump(),
        "status": MemberStatus.ACTIVE,
        "created_at": now,
        "updated_at": now,
    }


async def create_member(
    session: AsyncSession, brand_id: uuid.UUID, payload: MemberCreate
) -> Member:
    member = await MemberRepository(session).insert(_member_values(brand_id, payload, utcnow()))
    if member is None:
        raise DuplicateExternalId(
            f"A member with external_id {payload.external_id!r} already exists."
        )
    await OUTBOX.add(session, MemberCreated.of(member))
    return member


async def get_member(session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID) -> Member:
    member = await MemberRepository(session).get(brand_id, member_id)
    if member is None:
        raise MemberNotFound()
    return member


async def find_member(session: AsyncSession, brand_id: uuid.UUID, reference: str) -> Member | None:
    """A brand's member by id or, failing that, by external id (for `kinfolk token`)."""
    repository = MemberRepository(session)
    try:
        member_id = uuid.UUID(reference)
    except ValueError:
        pass
    else:
        found = await repository.get(brand_id, member_id)
        if found is not None:
            return found
    return await repository.get_by_external_id(brand_id, reference)


async def member_ids(
    session: AsyncSession, brand_id: uuid.UUID, external_ids: Sequence[str]
) -> dict[str, uuid.UUID]:
    """The ids of a brand's members with these external ids (those that exist): what a bulk
    loader needs after an import, which reports counts rather than ids."""
    return await MemberRepository(session).ids_by_external_id(brand_id, external_ids)


async def list_members(
    session: AsyncSession, brand_id: uuid.UUID, filters: MemberFilters, page: PageRequest
) -> Sequence[Member]:
    if filters.email is not None:
        filters = replace(filters, email=filters.email.lower())  # emails are stored lower-cased
    return await MemberRepository(session).page(brand_id, filters, page)


async def member_for_token(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID
) -> Member:
    """The member a token speaks for, if they may still use it."""
    member = await MemberRepository(session).get(brand_id, member_id)
    if member is None:
        raise MemberGone("The token's member does not exist.")
    if member.status is MemberStatus.ERASED:
        raise MemberGone("This member has been erased.")
    if member.status is MemberStatus.SUSPENDED:
        raise MemberSuspended("This member is suspended; contact the brand.")
    return member


async def _locked(session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID) -> Member:
    member = await MemberRepository(session).get(brand_id, member_id, for_update=True)
    if member is None:
        raise MemberNotFound()
    return member


def _changeable(member: Member) -> None:
    if member.status is MemberStatus.ERASED:
        raise MemberErased()


async def update_member(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    payload: MemberSelfUpdate,
) -> Member:
    """Applies the fields sent; emits `member.updated` naming the fields that changed, if any."""
    member = await _locked(session, brand_id, member_id)
    _changeable(member)
    changed: list[str] = []
    for field in type(payload).model_fields:
        if field not in payload.model_fields_set:
            continue
        value = getattr(payload, field)
        if isinstance(payload, MemberUpdate) and field == "traits":
            value = _merge_traits(member.traits, value)
        if value != getattr(member, field):
            setattr(member, field, value)
            changed.append(field)
    if changed:
        member.updated_at = utcnow()
        await OUTBOX.add(session, MemberUpdated.of(member, changed))
    return member


def _merge_traits(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_TRAITS:
        raise ValidationFailed(f"A member can have at most {MAX_TRAITS} traits.")
    return merged


async def set_status(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID, status: MemberStatus
) -> Member:
    """Suspends or reactivates a member; setting the status it already has changes nothing."""
    assert status is not MemberStatus.ERASED, "erasure goes through erase_member"
    member = await _locked(session, brand_id, member_id)
    _changeable(member)
    if member.status is not status:
        member.status = status
        member.updated_at = utcnow()
        await OUTBOX.add(session, MemberUpdated.of(member, ["status"]))
    return member


async def erase_member(session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID) -> Member:
    """Forgets a member's personal data, keeping the id; a second erasure changes nothing."""
    member = await _locked(session, brand_id, member_id)
    if member.status is MemberStatus.ERASED:
        return member
    now = utcnow()
    member.external_id = None
    member.email = None
    member.display_name = None
    member.birthday = None
    member.locale = None
    member.time_zone = None
    member.traits = {}
    member.interests = []
    member.status = MemberStatus.ERASED
    member.erased_at = now
    member.updated_at = now
    consents = ConsentRepository(session)
    await consents.scrub_history(brand_id, member_id)
    for consent in await consents.current(brand_id, member_id):
        if consent.granted:
            consents.record(_change(consent, granted=False, source=ERASURE_SOURCE, at=now))
        consent.granted = False
        consent.source = ERASURE_SOURCE
        consent.changed_at = now
    await _scrub_copies(session, member)
    await OUTBOX.add(
        session,
        MemberErasedEvent(
            brand_id=brand_id,
            subject_id=member.id,
            occurred_at=now,
            data=MemberErasedData(member_id=member.id, erased_at=now),
        ),
    )
    return member


async def _scrub_copies(session: AsyncSession, member: Member) -> None:
    """Erase the member's data where this service keeps copies of it: the events in its outbox
    (kept a week after publishing, as a replay source) say what the member row now says, and
    a replayed create answers with the erased member. Consumers learn of the erasure from
    `member.erased`; what they already took from earlier events is theirs to forget."""
    erasure = ErasureRepository(session)
    profile = MemberProfile.fields_of(member)
    # The status and the id stay: a replayed `member.created` still creates the member, and
    # `member.erased` (written after this) erases it again.
    erased = {k: v for k, v in profile.items() if k not in ("member_id", "status")}
    await erasure.scrub_events(
        member.brand_id, member.id, erased, [MemberCreated.event_type(), MemberUpdated.event_type()]
    )
    await erasure.scrub_events(
        member.brand_id,
        member.id,
        {"external_id": None, "source": ""},
        [MemberConsentChanged.event_type()],
    )
    body = MemberRead.model_validate(member).model_dump_json().encode()
    prefix = b'{"id":"' + str(member.id).encode() + b'"'
    # The match relies on the id coming first in MemberRead, as the create endpoint stores it.
    assert body.startswith(prefix)
    await erasure.replace_responses(member.brand_id, prefix, body)


# --- Consents -------------------------------------------------------------------------------


def _change(consent: Consent, *, granted: bool, source: str, at: datetime) -> ConsentChange:
    return ConsentChange(
        id=new_id(),
        member_id=consent.member_id,
        brand_id=consent.brand_id,
        purpose=consent.purpose,
        granted=granted,
        source=source,
        changed_at=at,
    )


async def list_consents(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID
) -> Sequence[Consent]:
    await get_member(session, brand_id, member_id)
    return await ConsentRepository(session).current(brand_id, member_id)


async def set_consent(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    purpose: ConsentPurpose,
    *,
    granted: bool,
    source: str,
) -> Consent:
    """Records a consent choice. Only a change (or a first choice) is kept in the history and
    announced with `member.consent_changed`; repeating the current choice changes nothing."""
    member = await _locked(session, brand_id, member_id)
    _changeable(member)
    consents = ConsentRepository(session)
    consent = await consents.get(brand_id, member_id, purpose)
    if consent is not None and consent.granted == granted:
        return consent
    now = utcnow()
    if consent is None:
        consent = Consent(member_id=member_id, brand_id=brand_id, purpose=purpose)
        consents.add(consent)
    consent.granted = granted
    consent.source = source
    consent.changed_at = now
    consents.record(_change(consent, granted=granted, source=source, at=now))
    await OUTBOX.add(
        session,
        MemberConsentChanged(
            brand_id=brand_id,
            subject_id=member_id,
            occurred_at=now,
            data=MemberConsentChangedData(
                member_id=member_id,
                external_id=member.external_id,
                purpose=purpose,
                granted=granted,
                source=source,
                changed_at=now,
            ),
        ),
    )
    return consent


# --- Privacy export -------------------------------------------------------------------------


async def export_member(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    peers: Sequence[ServiceClient],
) -> MemberExport:
    """Everything Kinfolk holds on a member: this service's data and each peer's section."""
    member = await get_member(session, brand_id, member_id)
    consents = ConsentRepository(session)
    current = await consents.current(brand_id, member_id)
    history = await consents.history(brand_id, member_id)
    services: dict[str, dict[str, Any]] = {}
    # Peers hosted by this process take connections from the same pool: this request's goes
    # back first. One peer at a time: in tests they share one connection.
    await release_connection(session)
    for peer in peers:
        services[peer.service] = await peer.privacy_export(member_id)
    return MemberExport(
        member_id=member.id,
        exported_at=utcnow(),
        members=MembersSection(
            profile=MemberRead.model_validate(member),
            consents=[ConsentRead.model_validate(c) for c in current],
            consent_history=[ConsentChangeRead.model_validate(c) for c in history],
        ),
        services=services,
    )


# --- Bulk import ----------------------------------------------------------------------------


def _duplicate(line: int, external_id: str | None, first_line: int | None) -> ImportFailure:
    detail = (
        f"external_id {external_id!r} is already used on line {first_line} of this file."
        if first_line is not None
        else f"A member with external_id {external_id!r} already exists."
    )
    return ImportFailure(line=line, error=DuplicateExternalId.code, detail=detail)


async def import_members(
    session: AsyncSession,
    brand_id: uuid.UUID,
    content_type: str | None,
    body: AsyncIterator[bytes],
    *,
    dry_run: bool,
) -> ImportReport:
    """Creates the valid members of an NDJSON or CSV file and reports every line that is not.

    Each batch is validated in Python, staged with COPY, cleared of external ids seen earlier in
    the file or already in the brand, then inserted in one statement with its `member.created`
    events (COPY into the outbox). A dry run stops after the checks and writes nothing.
    """
    batches = parse_import(content_type, body, IMPORT_BATCH_LINES)
    repository = MemberImportRepository(session)
    await repository.prepare()
    total = imported = 0
    failed: list[ImportFailure] = []
    async for batch in batches:
        total += len(batch)
        now = utcnow()
        staged: dict[str, tuple[int, StagedMember]] = {}
        for line, parsed in batch:
            if isinstance(parsed, LineError):
                failed.append(ImportFailure(line=line, error=parsed.code, detail=parsed.detail))
                continue
            earlier = staged.get(parsed.external_id)
            if earlier is not None:
                failed.append(_duplicate(line, parsed.external_id, earlier[0]))
                continue
            member = StagedMember(**_member_values(brand_id, parsed, now))
            staged[parsed.external_id] = (line, member)
        if not staged:
            continue
        await repository.stage(list(staged.values()))
        members = dict(staged.values())
        for duplicate in await repository.drop_duplicates(brand_id):
            member = members.pop(duplicate.line)
            failed.append(_duplicate(duplicate.line, member.external_id, duplicate.first_line))
        if dry_run:
            imported += len(members)
            continue
        created = await repository.insert_staged(brand_id, now)
        for line, member in members.items():
            if member.id not in created:  # a concurrent request created it meanwhile
                failed.append(_duplicate(line, member.external_id, None))
        await OUTBOX.copy_many(
            session, (MemberCreated.of(m) for m in members.values() if m.id in created)
        )
        imported += len(created)
    failed.sort(key=lambda failure: failure.line)
    return ImportReport(total=total, imported=imported, failed=failed, dry_run=dry_run)


# --- API keys -------------------------------------------------------------------------------


async def _new_api_key(
    session: AsyncSession,
    brand_id: uuid.UUID,
    name: str,
    scopes: Sequence[str] | frozenset[str],
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    secret = secrets.token_urlsafe(32)
    api_key = ApiKey(
        id=new_id(),
        brand_id=brand_id,
        name=name,
        secret_hash=hash_api_key_secret(secret),
        scopes=sorted(set(scopes)),
        created_at=utcnow(),
        revoked_at=None,
        expires_at=expires_at,
    )
    await ApiKeyRepository(session).add(api_key)
    return api_key, format_api_key(api_key.id, secret)


async def create_api_key(
    session: AsyncSession, brand_id: uuid.UUID, payload: ApiKeyCreate
) -> tuple[ApiKey, str]:
    """A new key; the plain text is returned here once and never stored."""
    return await _new_api_key(
        session, brand_id, payload.name, [s.value for s in payload.scopes], payload.expires_at
    )


async def list_api_keys(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> Sequence[ApiKey]:
    return await ApiKeyRepository(session).page(brand_id, page)


def api_key_record(api_key: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=api_key.id,
        brand_id=api_key.brand_id,
        scopes=frozenset(api_key.scopes),
        secret_hash=api_key.secret_hash,
        revoked=api_key.revoked_at is not None,
        expires_at=api_key.expires_at,
    )


async def revoke_api_key(
    session: AsyncSession,
    redis: Redis,
    brand_id: uuid.UUID,
    key_id: uuid.UUID,
    *,
    cache_seconds: int,
) -> ApiKey:
    """Revokes a key everywhere at once: its cache entry, which every service reads first, is
    overwritten with the revoked record. Revoking a revoked key changes nothing."""
    api_key = await ApiKeyRepository(session).get_in_brand(brand_id, key_id, for_update=True)
    if api_key is None:
        raise ApiKeyNotFound()
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
    await cache_api_key_record(redis, api_key_record(api_key), cache_seconds)
    return api_key


async def verify_api_key(session: AsyncSession, token: str) -> ApiKeyRecord | None:
    """The record of a key whose secret matches (revoked or expired included: the caller's
    verifier decides), else None."""
    parsed = parse_api_key(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    api_key = await ApiKeyRepository(session).get(key_id)
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_api_key_secret(secret)):
        return None
    return api_key_record(api_key)


def api_key_lookup(database: Database) -> ApiKeyLookup:
    """How this process checks keys: straight from the table, in a unit of work of its own."""

    async def lookup(key_id: uuid.UUID, token: str) -> ApiKeyRecord | None:
        async with database.unit_of_work() as session:
            api_key = await ApiKeyRepository(session).get(key_id)
            return api_key_record(api_key) if api_key is not None else None

    return lookup
