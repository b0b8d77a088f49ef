"""REST for the community's moderation: members' reports; the queue and decisions for staff and
group moderators; the blocklist, settings and classifier for staff."""

from __future__ import annotations

import uuid

from fastapi import Response

from services.community.access import (
    CurrentMember,
    ReadingActor,
    ReadingMember,
    StaffRead,
    StaffWrite,
    WritingActor,
)
from services.community.moderation import blocklist, decisions, reports, settings, training
from services.community.moderation.models import ReportStatus
from services.community.moderation.schemas import (
    BlockedTermCreate,
    BlockedTermRead,
    ClassifierRead,
    DecisionCreate,
    DecisionRead,
    ExampleRead,
    ExamplesAdded,
    ExamplesUpload,
    QueueItem,
    ReportCreate,
    ReportRead,
    SettingsBody,
    SettingsRead,
)
from services.kernel.db import SessionDep
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: moderation"])


# --- Reports (members) ------------------------------------------------------------------------


@router.post(
    "/reports",
    status_code=201,
    response_model=ReportRead,
    summary="Report a post, a comment or a member (200 with the open report if already made)",
    responses={
        200: {"description": "The reporter's open report on this target, unchanged"},
        403: {"description": "MemberSuspended"},
        404: {"description": "TargetNotFound"},
        422: {"description": "ValidationError (unknown reason, missing target), CannotReportSelf"},
    },
)
async def file_report(
    payload: ReportCreate, session: SessionDep, me: CurrentMember, response: Response
) -> ReportRead:
    filed = await reports.file_report(session, me, payload)
    if not filed.created:
        response.status_code = 200
    return ReportRead.model_validate(filed.report)


@router.get("/me/reports", response_model=Page[ReportRead], summary="My reports, oldest first")
async def my_reports(session: SessionDep, me: ReadingMember, page: PageDep) -> Page[ReportRead]:
    rows = await reports.my_reports(session, me, page)
    return Page[ReportRead].of(rows, page, key=lambda r: r.id, item=ReportRead.model_validate)


@router.get(
    "/moderation/reports",
    response_model=Page[ReportRead],
    summary="Every report of the brand, oldest first (staff)",
)
async def list_reports(
    session: SessionDep,
    staff: StaffRead,
    page: PageDep,
    status: ReportStatus | None = None,
    target_id: uuid.UUID | None = None,
) -> Page[ReportRead]:
    rows = await reports.list_reports(
        session, staff.brand_id, page, status=status, target_id=target_id
    )
    return Page[ReportRead].of(rows, page, key=lambda r: r.id, item=ReportRead.model_validate)


# --- Queue and decisions (staff and group moderators) -------------------------------------------


@router.get(
    "/moderation/queue",
    response_model=Page[QueueItem],
    summary="Open reports and held content, oldest first (staff: all; moderators: their groups)",
    responses={403: {"description": "NotAModerator"}},
)
async def moderation_queue(
    session: SessionDep, actor: ReadingActor, page: PageDep
) -> Page[QueueItem]:
    rows = await decisions.queue(session, actor, page)
    return Page[QueueItem].of(rows, page, key=lambda r: r.id, item=QueueItem.of)


@router.post(
    "/moderation/decisions",
    status_code=201,
    response_model=DecisionRead,
    summary="Approve, remove, warn or suspend; resolves the open reports on the target",
    responses={
        403: {"description": "NotAModerator, CannotModerateSelf, SuspendNeedsStaff"},
        404: {"description": "TargetNotFound"},
        409: {"description": "AlreadyRemoved"},
        422: {"description": "ValidationError (unknown action), ActionNotApplicable"},
    },
)
async def decide(payload: DecisionCreate, session: SessionDep, actor: WritingActor) -> DecisionRead:
    return DecisionRead.model_validate(await decisions.decide(session, actor, payload))


@router.get(
    "/moderation/decisions",
    response_model=Page[DecisionRead],
    summary="Decisions, oldest first, by target or author (staff)",
)
async def list_decisions(
    session: SessionDep,
    staff: StaffRead,
    page: PageDep,
    target_id: uuid.UUID | None = None,
    author_id: uuid.UUID | None = None,
) -> Page[DecisionRead]:
    rows = await decisions.list_decisions(
        session, staff.brand_id, page, target_id=target_id, author_id=author_id
    )
    return Page[DecisionRead].of(rows, page, key=lambda d: d.id, item=DecisionRead.model_validate)


# --- Blocklist (staff) ------------------------------------------------------------------------


@router.post(
    "/moderation/blocklist",
    status_code=201,
    response_model=BlockedTermRead,
    summary="Add a word or phrase to the blocklist",
    responses={409: {"description": "TermExists"}},
)
async def add_term(
    payload: BlockedTermCreate, session: SessionDep, staff: StaffWrite
) -> BlockedTermRead:
    term = await blocklist.add_term(session, staff.brand_id, payload.term)
    return BlockedTermRead.model_validate(term)


@router.get("/moderation/blocklist", response_model=Page[BlockedTermRead], summary="The blocklist")
async def list_terms(session: SessionDep, staff: StaffRead, page: PageDep) -> Page[BlockedTermRead]:
    rows = await blocklist.list_terms(session, staff.brand_id, page)
    return Page[BlockedTermRead].of(
        rows, page, key=lambda t: t.id, item=BlockedTermRead.model_validate
    )


@router.delete(
    "/moderation/blocklist/{term_id}",
    status_code=204,
    summary="Take a term off the blocklist",
    responses={404: {"description": "TermNotFound"}},
)
async def delete_term(term_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Response:
    await blocklist.delete_term(session, staff.brand_id, term_id)
    return Response(status_code=204)


# --- Settings (staff) -------------------------------------------------------------------------


@router.get(
    "/moderation/settings", response_model=SettingsRead, summary="The brand's screening settings"
)
async def get_settings(session: SessionDep, staff: StaffRead) -> SettingsRead:
    return await settings.current_settings(session, staff.brand_id)


@router.put(
    "/moderation/settings",
    response_model=SettingsRead,
    summary="Replace the brand's screening settings (omitted fields take their defaults)",
)
async def put_settings(
    payload: SettingsBody, session: SessionDep, staff: StaffWrite
) -> SettingsRead:
    return await settings.put_settings(session, staff.brand_id, payload)


# --- Classifier (staff) -----------------------------------------------------------------------


@router.post(
    "/moderation/classifier/examples",
    status_code=201,
    response_model=ExamplesAdded,
    summary="Add labelled examples (ok, spam, abusive) for the classifier",
)
async def add_examples(
    payload: ExamplesUpload, session: SessionDep, staff: StaffWrite
) -> ExamplesAdded:
    return await training.add_examples(session, staff.brand_id, payload)


@router.get(
    "/moderation/classifier/examples",
    response_model=Page[ExampleRead],
    summary="The labelled examples, oldest first",
)
async def list_examples(session: SessionDep, staff: StaffRead, page: PageDep) -> Page[ExampleRead]:
    rows = await training.list_examples(session, staff.brand_id, page)
    return Page[ExampleRead].of(rows, page, key=lambda e: e.id, item=ExampleRead.model_validate)


@router.delete(
    "/moderation/classifier/examples/{example_id}",
    status_code=204,
    summary="Delete a labelled example (the next training leaves it out)",
    responses={404: {"description": "ExampleNotFound"}},
)
async def delete_example(example_id: uuid.UUID, session: SessionDep, staff: StaffWrite) -> Response:
    await training.delete_example(session, staff.brand_id, example_id)
    return Response(status_code=204)


@router.post(
    "/moderation/classifier/train",
    response_model=ClassifierRead,
    summary="Train the classifier on the examples; screening uses the new version at once",
    responses={422: {"description": "NotEnoughExamples"}},
)
async def train(session: SessionDep, staff: StaffWrite) -> ClassifierRead:
    return ClassifierRead.model_validate(await training.train(session, staff.brand_id))


@router.get(
    "/moderation/classifier",
    response_model=ClassifierRead,
    summary="The brand's current classifier",
    responses={404: {"description": "ClassifierNotTrained"}},
)
async def get_classifier(session: SessionDep, staff: StaffRead) -> ClassifierRead:
    return ClassifierRead.model_validate(await training.current_classifier(session, staff.brand_id))
