"""REST for segments: define them by rules, preview them, materialise versions and read who
entered and exited; the catalog of fields and activities rules may test."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response, status

from services.kernel.db import SessionDep
from services.kernel.idempotency import IdempotencyKeyHeader, request_hash
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router
from services.marketing.access import StaffRead, StaffWrite
from services.marketing.fields import FIELDS
from services.marketing.models import IDEMPOTENCY, Segment, SegmentVersion
from services.marketing.segments import service
from services.marketing.segments.affinity import AffinitySource, RecommenderAudiences
from services.marketing.segments.rules import EVENTS
from services.marketing.segments.schemas import (
    COUNT_OPS,
    OPERATORS,
    CatalogRead,
    ChangeKind,
    EventKindRead,
    FieldRead,
    MemberChange,
    MemberSample,
    PreviewRead,
    PreviewRequest,
    SegmentCreate,
    SegmentRead,
    SegmentUpdate,
    VersionRead,
)

router = Router(prefix="/marketing/v1", tags=["marketing: segments"])

_RULE_ERRORS = (
    "InvalidRule, UnknownField, WrongType, OperatorNotAllowed, UnknownEvent, UnknownSegment, "
    "SegmentCycle, RuleTooDeep, RuleTooLarge: `detail` has the `path` of the node at fault "
    "(e.g. `rule.and[2].or[0].value`) and a `message`"
)
_SCOPE_ERRORS = (
    "FieldNotReadable (a personal field needs members:read), AffinityNotAllowed (an "
    "affinity condition needs recommender:read)"
)
_404: dict[int | str, dict[str, str]] = {404: {"description": "SegmentNotFound"}}
_AFFINITY: dict[int | str, dict[str, str]] = {
    403: {"description": "AffinityNotAllowed"},
    422: {"description": "UnknownItem (an affinity condition's item)"},
    503: {"description": "AffinityUnavailable"},
}


async def affinity_source(request: Request) -> AffinitySource:
    """The recommender, asked with the caller's own key (in process when this app hosts it)."""
    return RecommenderAudiences.for_request(request)


Affinities = Annotated[AffinitySource, Depends(affinity_source)]


def _read(segment: Segment) -> SegmentRead:
    return SegmentRead(
        id=segment.id,
        name=segment.name,
        description=segment.description,
        rule=segment.rule,
        uses=list(segment.uses),
        purpose=segment.purpose,
        refresh=segment.refresh,
        version=segment.version,
        created_at=segment.created_at,
        updated_at=segment.updated_at,
    )


def _version(version: SegmentVersion) -> VersionRead:
    return VersionRead.model_validate(version, from_attributes=True)


def _preview(found: service.Preview) -> PreviewRead:
    return PreviewRead(
        count=found.count,
        sample=[MemberSample.model_validate(row) for row in found.sample],
        warnings=found.warnings,
    )


@router.get("/fields", response_model=CatalogRead, summary="What segment rules may test")
async def catalog(staff: StaffRead) -> CatalogRead:
    """Every member-360 field with its type, whether it is personal (testing or exporting it
    needs `members:read` as well) and the operators that fit it; the activities event
    conditions count, and the operators of a count."""
    del staff
    return CatalogRead(
        fields=[
            FieldRead(
                name=f.name,
                type=f.type,
                description=f.description,
                personal=f.personal,
                operators=list(OPERATORS[f.type]),
            )
            for f in FIELDS.values()
        ],
        events=[
            EventKindRead(
                event=event,
                description="Anything the member did themself"
                if event == "active"
                else f"Journal activity `{event}`",
            )
            for event in EVENTS
        ],
        count_operators=list(COUNT_OPS),
    )


@router.post(
    "/segments",
    status_code=201,
    response_model=SegmentRead,
    summary="Define a segment",
    responses={
        403: {"description": _SCOPE_ERRORS},
        409: {"description": "IdempotencyKeyReused"},
        422: {"description": _RULE_ERRORS},
    },
)
async def create_segment(
    payload: SegmentCreate,
    request: Request,
    staff: StaffWrite,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """The rule is checked (fields, types, operators, named segments, size and depth) and
    saved; membership is computed by the schedule (`refresh`) or on demand (`POST
    .../versions`)."""

    async def work() -> SegmentRead:
        return _read(await service.create_segment(session, staff, payload))

    return await IDEMPOTENCY.run(
        session,
        caller=staff,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


@router.get("/segments", response_model=Page[SegmentRead], summary="List segments")
async def list_segments(staff: StaffRead, session: SessionDep, page: PageDep) -> Page[SegmentRead]:
    rows = await service.list_segments(session, staff.brand_id, page)
    return Page.of(rows, page, key=lambda s: s.id, item=_read)


@router.post(
    "/segments/preview",
    response_model=PreviewRead,
    summary="Preview a rule without saving it",
    responses={
        403: {"description": _SCOPE_ERRORS},
        422: {"description": f"{_RULE_ERRORS}; UnknownItem"},
        503: {"description": "AffinityUnavailable"},
    },
)
async def preview_rule(
    payload: PreviewRequest, staff: StaffRead, session: SessionDep, affinity: Affinities
) -> PreviewRead:
    """How many members the rule holds for now (with the purpose's consent filter) and 20 of
    them by member id, with fields that do not say who they are."""
    found = await service.preview(
        session,
        staff.brand_id,
        payload.rule,  # the raw rule: parsed and checked by the service
        purpose=payload.purpose,
        staff=staff,
        affinity=affinity,
    )
    return _preview(found)


@router.get(
    "/segments/{segment_id}", response_model=SegmentRead, summary="A segment", responses=_404
)
async def read_segment(segment_id: uuid.UUID, staff: StaffRead, session: SessionDep) -> SegmentRead:
    return _read(await service.get_segment(session, staff.brand_id, segment_id))


@router.patch(
    "/segments/{segment_id}",
    response_model=SegmentRead,
    summary="Change a segment",
    responses={
        **_404,
        403: {"description": _SCOPE_ERRORS},
        422: {"description": _RULE_ERRORS},
    },
)
async def update_segment(
    segment_id: uuid.UUID, payload: SegmentUpdate, staff: StaffWrite, session: SessionDep
) -> SegmentRead:
    """Fields sent change; the rule is checked again, including against the segments that
    name this one. Versions already materialised keep the rule they were computed by."""
    return _read(await service.update_segment(session, staff, segment_id, payload))


@router.delete(
    "/segments/{segment_id}",
    status_code=204,
    summary="Delete a segment",
    responses={**_404, 409: {"description": "SegmentInUse: another segment names it"}},
)
async def delete_segment(segment_id: uuid.UUID, staff: StaffWrite, session: SessionDep) -> Response:
    await service.delete_segment(session, staff.brand_id, segment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/segments/{segment_id}/preview",
    response_model=PreviewRead,
    summary="Preview a saved segment now",
    responses={**_404, **_AFFINITY},
)
async def preview_segment(
    segment_id: uuid.UUID, staff: StaffRead, session: SessionDep, affinity: Affinities
) -> PreviewRead:
    segment = await service.get_segment(session, staff.brand_id, segment_id)
    return _preview(await service.preview_segment(session, segment, affinity=affinity))


@router.post(
    "/segments/{segment_id}/versions",
    status_code=201,
    response_model=VersionRead,
    summary="Materialise a version now",
    responses={**_404, **_AFFINITY},
)
async def materialise(
    segment_id: uuid.UUID, staff: StaffWrite, session: SessionDep, affinity: Affinities
) -> VersionRead:
    """Computes the membership now as the next version: who entered and who exited since the
    last one is kept, and each change is sent as a `segment.entered` / `segment.exited`
    event."""
    segment = await service.get_segment(session, staff.brand_id, segment_id)
    return _version(await service.materialise(session, segment, affinity=affinity))


@router.get(
    "/segments/{segment_id}/versions",
    response_model=list[VersionRead],
    summary="A segment's versions, newest first",
    responses=_404,
)
async def list_versions(
    segment_id: uuid.UUID,
    staff: StaffRead,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(ge=1, description="Versions before this one.")] = None,
) -> list[VersionRead]:
    segment = await service.get_segment(session, staff.brand_id, segment_id)
    rows = await service.versions(session, segment, before=before, limit=limit)
    return [_version(v) for v in rows]


@router.get(
    "/segments/{segment_id}/versions/{version}",
    response_model=VersionRead,
    summary="One version",
    responses={404: {"description": "SegmentNotFound, VersionNotFound"}},
)
async def read_version(
    segment_id: uuid.UUID, version: int, staff: StaffRead, session: SessionDep
) -> VersionRead:
    segment = await service.get_segment(session, staff.brand_id, segment_id)
    return _version(await service.get_version(session, segment, version))


@router.get(
    "/segments/{segment_id}/versions/{version}/changes",
    response_model=Page[MemberChange],
    summary="Who entered or exited at a version",
    responses={404: {"description": "SegmentNotFound, VersionNotFound"}},
)
async def version_changes(
    segment_id: uuid.UUID,
    version: int,
    kind: ChangeKind,
    staff: StaffRead,
    session: SessionDep,
    page: PageDep,
) -> Page[MemberChange]:
    """Members who entered (were not members of the version before, are of this one) or
    exited (the other way round), by member id; pages forwards only."""
    segment = await service.get_segment(session, staff.brand_id, segment_id)
    rows = await service.changes(
        session, segment, version, entered=kind is ChangeKind.ENTERED, page=page
    )
    return Page.of(rows, page, key=lambda m: m, item=lambda m: MemberChange(member_id=m))
