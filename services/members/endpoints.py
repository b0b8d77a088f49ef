"""The members REST API, `/members/v1`: thin handlers over `service`.

Staff call it with API keys (scopes per route); members call `/me` routes with their token.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, Query, Request, Response
from redis.asyncio import Redis

from services.kernel.auth import (
    MemberDep,
    Scope,
    StaffPrincipal,
    cache_api_key_record,
    require_staff,
)
from services.kernel.clients import Peers, ServiceClient
from services.kernel.db import SessionDep
from services.kernel.errors import Unauthorized
from services.kernel.idempotency import IdempotencyKeyHeader, request_hash
from services.kernel.module import ServiceModule
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router
from services.kernel.settings import Settings
from services.members import service
from services.members.importing import CSV, NDJSON
from services.members.models import IDEMPOTENCY, SCHEMA, ConsentPurpose, Member, MemberStatus
from services.members.repository import MemberFilters
from services.members.schemas import (
    MAX_EXTERNAL_ID,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ApiKeyVerify,
    ConsentList,
    ConsentRead,
    ConsentUpdate,
    ImportReport,
    MemberCreate,
    MemberExport,
    MemberRead,
    MemberSelfUpdate,
    MemberUpdate,
    SelfConsentUpdate,
)

router = Router(prefix="/members/v1", tags=["members"])

StaffRead = Annotated[StaffPrincipal, Depends(require_staff(Scope.MEMBERS_READ))]
StaffWrite = Annotated[StaffPrincipal, Depends(require_staff(Scope.MEMBERS_WRITE))]
Admin = Annotated[StaffPrincipal, Depends(require_staff(Scope.ADMIN))]


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


RedisDep = Annotated[Redis, Depends(get_redis)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def current_member(principal: MemberDep, session: SessionDep) -> Member:
    """The member behind a member token: 401 once erased, 403 while suspended."""
    return await service.member_for_token(session, principal.brand_id, principal.member_id)


CurrentMember = Annotated[Member, Depends(current_member)]


async def privacy_services() -> Sequence[ServiceModule]:
    """Every other service that keeps data on members (a dependency, so tests can add one)."""
    # Imported here: the registry imports this package to build its list.
    from services.registry import SERVICES

    return [s for s in SERVICES if s.privacy_export and s.schema != SCHEMA]


async def privacy_peers(
    request: Request,
    services: Annotated[Sequence[ServiceModule], Depends(privacy_services)],
) -> AsyncIterator[list[ServiceClient]]:
    """Clients for those services, carrying the caller's credentials (see the privacy contract)."""
    peers = Peers.of(request.app)
    headers = {"Authorization": request.headers.get("authorization", "")}
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(ServiceClient.open(s.name, peers, headers=headers))
            for s in services
        ]


PrivacyPeers = Annotated[list[ServiceClient], Depends(privacy_peers)]


# --- Members (staff) ------------------------------------------------------------------------


@router.post(
    "/members",
    status_code=201,
    response_model=MemberRead,
    summary="Create a member",
    responses={409: {"description": "DuplicateExternalId or IdempotencyKeyReused"}},
)
async def create_member(
    payload: MemberCreate,
    request: Request,
    session: SessionDep,
    staff: StaffWrite,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def work() -> MemberRead:
        member = await service.create_member(session, staff.brand_id, payload)
        return MemberRead.model_validate(member)

    return await IDEMPOTENCY.run(
        session,
        caller=staff,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "One member per line, in the shape of `POST /members`. CSV has a header row; "
            "`traits` is a JSON object and `interests` is `;`-separated."
        ),
        "content": {
            NDJSON: {"schema": {"type": "string"}},
            CSV: {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/members/import",
    response_model=ImportReport,
    summary="Import members from NDJSON or CSV",
    openapi_extra=_IMPORT_BODY,
    responses={415: {"description": "Not NDJSON or CSV"}},
)
async def import_members(
    request: Request,
    session: SessionDep,
    staff: StaffWrite,
    dry_run: Annotated[bool, Query(description="Check every line; write nothing.")] = False,
) -> ImportReport:
    return await service.import_members(
        session,
        staff.brand_id,
        request.headers.get("content-type"),
        request.stream(),
        dry_run=dry_run,
    )


@router.get("/members", response_model=Page[MemberRead], summary="List members")
async def list_members(
    session: SessionDep,
    staff: StaffRead,
    page: PageDep,
    external_id: Annotated[str | None, Query(max_length=MAX_EXTERNAL_ID)] = None,
    status: MemberStatus | None = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> Page[MemberRead]:
    filters = MemberFilters(external_id=external_id, status=status, email=email)
    members = await service.list_members(session, staff.brand_id, filters, page)
    return Page[MemberRead].of(members, page, key=lambda m: m.id, item=MemberRead.model_validate)


@router.get("/members/{member_id}", response_model=MemberRead, summary="Get a member")
async def get_member(member_id: uuid.UUID, session: SessionDep, staff: StaffRead) -> Member:
    return await service.get_member(session, staff.brand_id, member_id)


@router.patch("/members/{member_id}", response_model=MemberRead, summary="Update a member")
async def update_member(
    member_id: uuid.UUID, payload: MemberUpdate, session: SessionDep, staff: StaffWrite
) -> Member:
    return await service.update_member(session, staff.brand_id, member_id, payload)


@router.post("/members/{member_id}/suspend", response_model=MemberRead, summary="Suspend")
async def suspend_member(member_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Member:
    return await service.set_status(session, staff.brand_id, member_id, MemberStatus.SUSPENDED)


@router.post("/members/{member_id}/reactivate", response_model=MemberRead, summary="Reactivate")
async def reactivate_member(member_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Member:
    return await service.set_status(session, staff.brand_id, member_id, MemberStatus.ACTIVE)


@router.post(
    "/members/{member_id}/erase",
    response_model=MemberRead,
    summary="Erase a member's personal data (right to erasure)",
)
async def erase_member(member_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Member:
    return await service.erase_member(session, staff.brand_id, member_id)


@router.get("/members/{member_id}/consents", response_model=ConsentList, summary="Consents")
async def list_consents(member_id: uuid.UUID, session: SessionDep, staff: StaffRead) -> ConsentList:
    consents = await service.list_consents(session, staff.brand_id, member_id)
    return ConsentList(items=[ConsentRead.model_validate(c) for c in consents])


@router.put(
    "/members/{member_id}/consents/{purpose}", response_model=ConsentRead, summary="Set consent"
)
async def set_consent(
    member_id: uuid.UUID,
    purpose: ConsentPurpose,
    payload: ConsentUpdate,
    session: SessionDep,
    staff: StaffWrite,
) -> ConsentRead:
    consent = await service.set_consent(
        session, staff.brand_id, member_id, purpose, granted=payload.granted, source=payload.source
    )
    return ConsentRead.model_validate(consent)


@router.get(
    "/members/{member_id}/export",
    response_model=MemberExport,
    summary="Export everything Kinfolk holds on a member (right of access)",
)
async def export_member(
    member_id: uuid.UUID, session: SessionDep, staff: StaffRead, peers: PrivacyPeers
) -> MemberExport:
    return await service.export_member(session, staff.brand_id, member_id, peers)


# --- Members themselves ---------------------------------------------------------------------


@router.get("/me", response_model=MemberRead, summary="My profile")
async def get_me(member: CurrentMember) -> Member:
    return member


@router.patch("/me", response_model=MemberRead, summary="Update my profile")
async def update_me(
    payload: MemberSelfUpdate, member: CurrentMember, session: SessionDep
) -> Member:
    return await service.update_member(session, member.brand_id, member.id, payload)


@router.get("/me/consents", response_model=ConsentList, summary="My consents")
async def list_my_consents(member: CurrentMember, session: SessionDep) -> ConsentList:
    consents = await service.list_consents(session, member.brand_id, member.id)
    return ConsentList(items=[ConsentRead.model_validate(c) for c in consents])


@router.put("/me/consents/{purpose}", response_model=ConsentRead, summary="Set my consent")
async def set_my_consent(
    purpose: ConsentPurpose,
    payload: SelfConsentUpdate,
    member: CurrentMember,
    session: SessionDep,
) -> ConsentRead:
    consent = await service.set_consent(
        session, member.brand_id, member.id, purpose, granted=payload.granted, source=payload.source
    )
    return ConsentRead.model_validate(consent)


@router.get("/me/export", response_model=MemberExport, summary="Export my data")
async def export_me(
    member: CurrentMember, session: SessionDep, peers: PrivacyPeers
) -> MemberExport:
    return await service.export_member(session, member.brand_id, member.id, peers)


# --- API keys -------------------------------------------------------------------------------


@router.post(
    "/api-keys", status_code=201, response_model=ApiKeyCreated, summary="Create an API key"
)
async def create_api_key(payload: ApiKeyCreate, session: SessionDep, admin: Admin) -> ApiKeyCreated:
    api_key, plaintext = await service.create_api_key(session, admin.brand_id, payload)
    return ApiKeyCreated(**ApiKeyRead.model_validate(api_key).model_dump(), key=plaintext)


@router.get("/api-keys", response_model=Page[ApiKeyRead], summary="List API keys")
async def list_api_keys(session: SessionDep, admin: Admin, page: PageDep) -> Page[ApiKeyRead]:
    keys = await service.list_api_keys(session, admin.brand_id, page)
    return Page[ApiKeyRead].of(keys, page, key=lambda k: k.id, item=ApiKeyRead.model_validate)


@router.delete("/api-keys/{key_id}", response_model=ApiKeyRead, summary="Revoke an API key")
async def revoke_api_key(
    key_id: uuid.UUID,
    session: SessionDep,
    admin: Admin,
    redis: RedisDep,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> ApiKeyRead:
    seconds = settings.api_key_cache_seconds
    api_key = await service.revoke_api_key(
        session, redis, admin.brand_id, key_id, cache_seconds=seconds
    )
    # Written again after the commit: a verifier reading the row just before it could have
    # cached the key as valid in between.
    background.add_task(cache_api_key_record, redis, service.api_key_record(api_key), seconds)
    return ApiKeyRead.model_validate(api_key)


@router.post("/internal/api-keys/verify", include_in_schema=False)
async def verify_api_key(payload: ApiKeyVerify, session: SessionDep) -> Response:
    """For services in other processes (`RemoteApiKeyLookup`): the key's record, else 401."""
    record = await service.verify_api_key(session, payload.key)
    if record is None:
        raise Unauthorized("The API key is not valid.")
    return Response(content=record.to_json(), media_type="application/json")
