"""REST of the recommender, `/recommender/v1`: a member's lists, feedback on them, and A/B
experiments (staff)."""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from fastapi import Query, Request, Response

from recommender.serving import experiment_service, service
from recommender.serving.access import Reader, StaffRead, StaffWrite, Writer
from recommender.serving.errors import MemberNotFound
from recommender.serving.experiments import arms_of
from recommender.serving.rules import DEFAULT_LIMIT, MAX_LIMIT
from recommender.serving.schemas import (
    ArmReport,
    ExperimentCreate,
    ExperimentRead,
    ExperimentReport,
    FeedbackCreate,
    FeedbackRead,
    RecommendationList,
    RecommendationLists,
)
from recommender.store.models import IDEMPOTENCY, Experiment
from recommender.surfaces import SURFACES
from services.kernel.db import DatabaseDep, SessionDep
from services.kernel.idempotency import IdempotencyKeyHeader, request_hash
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router
from services.kernel.settings import Settings

router = Router(prefix="/recommender/v1", tags=["recommender"])

_SURFACES = ", ".join(SURFACES)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _json(body: dict[str, object]) -> Response:
    return Response(content=orjson.dumps(body), media_type="application/json")


def _list_body(served: service.ServedList) -> dict[str, object]:
    """A `RecommendationList`, written directly: the hot path skips building and validating a
    pydantic model per item (the schema is the documented one; a test holds them together)."""
    return {
        "member_id": served.member_id,
        "surface": served.surface,
        "exposure_id": served.exposure_id,
        "version_id": served.version_id,
        "arm": served.arm,
        "items": [
            {
                "item_id": item.item_id,
                "kind": item.kind,
                "id": item.item_id.partition(":")[2],
                "title": item.title,
                "category": item.category,
                "score": item.score,
                "reason": item.reason,
                "position": item.position,
                "explored": item.explored,
                "propensity": item.propensity,
            }
            for item in served.items
        ],
    }


@router.get(
    "/members/{member_id}/recommendations",
    response_model=RecommendationList,
    summary="A member's list for one surface, logged as an exposure",
    description="Callable by the member themself (member token) or by staff with "
    "`recommender:read`. An unknown member gets the brand's non-personalised list (cold "
    "start); a member without the personalisation consent always does.",
    responses={
        404: {"description": "MemberNotFound: a member token asking for another member"},
        422: {"description": "UnknownSurface, ValidationError (limit out of 1..50)"},
    },
)
async def recommendations(
    member_id: uuid.UUID,
    request: Request,
    database: DatabaseDep,
    caller: Reader,
    surface: Annotated[
        str,
        Query(description=f"One of: {_SURFACES}.", json_schema_extra={"enum": list(SURFACES)}),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    if not caller.may_see(member_id):
        raise MemberNotFound()
    served = await service.recommend(
        database,
        caller.brand_id,
        member_id,
        surface,
        limit,
        exploration_share=_settings(request).recommender_exploration_share,
    )
    return _json(_list_body(served))


@router.get(
    "/members/{member_id}/recommendations/lists",
    response_model=RecommendationLists,
    summary="Several of a member's lists in one call, each logged as its own exposure",
    description="What a screen that shows several lists asks for (the apps' home screen: "
    "perks, prompts and posts): each `list` is a surface, or a surface and a limit "
    "(`perks:10`; the limit defaults to 10), each surface at most once. The lists come back "
    "in the order asked, each exactly what `GET .../recommendations` would serve. Who may "
    "call it, and what an unknown member gets, are as there.",
    responses={
        404: {"description": "MemberNotFound: a member token asking for another member"},
        422: {
            "description": "UnknownSurface, ValidationError (a malformed list, a limit out of "
            "1..50, a surface asked twice, no list or more than one per surface)"
        },
    },
)
async def recommendation_lists(
    member_id: uuid.UUID,
    request: Request,
    database: DatabaseDep,
    caller: Reader,
    lists: Annotated[
        list[str],
        Query(
            alias="list",
            description=f"`surface` or `surface:limit`; surfaces: {_SURFACES}.",
            examples=["perks:10"],
        ),
    ],
) -> Response:
    if not caller.may_see(member_id):
        raise MemberNotFound()
    served = await service.recommend_lists(
        database,
        caller.brand_id,
        member_id,
        service.parse_lists(lists),
        exploration_share=_settings(request).recommender_exploration_share,
    )
    return _json({"lists": [_list_body(one) for one in served]})


@router.post(
    "/exposures/{exposure_id}/feedback",
    status_code=201,
    response_model=FeedbackRead,
    summary="A member clicked or dismissed an item of a list",
    description="By the member the list was served to, or staff with `recommender:write`. A "
    "dismissed item is not shown to the member again. Feedback on an item of a list counts "
    "once: repeating it answers the first record.",
    responses={
        404: {"description": "ExposureNotFound (unknown, or another member's list)"},
        409: {"description": "IdempotencyKeyReused"},
        422: {"description": "ItemNotInExposure, ValidationError (an unknown action)"},
    },
)
async def feedback(
    exposure_id: uuid.UUID,
    payload: FeedbackCreate,
    request: Request,
    session: SessionDep,
    caller: Writer,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def work() -> FeedbackRead:
        recorded = await service.feedback(
            session,
            caller.brand_id,
            exposure_id,
            payload.item_id,
            payload.action,
            member_id=caller.member_id,
        )
        return FeedbackRead(
            exposure_id=recorded.exposure_id,
            member_id=recorded.member_id,
            item_id=recorded.item_id,
            action=recorded.action,
            recorded_at=recorded.recorded_at,
        )

    return await IDEMPOTENCY.run(
        session,
        caller=caller.principal,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


# --- Experiments (staff) ------------------------------------------------------------------------


def _experiment(experiment: Experiment) -> ExperimentRead:
    return ExperimentRead.of(experiment, arms_of(experiment.arms))


_EXPERIMENT_404: dict[int | str, dict[str, str]] = {404: {"description": "ExperimentNotFound"}}


@router.post(
    "/experiments",
    status_code=201,
    response_model=ExperimentRead,
    summary="Start an A/B experiment",
    description="Members are split by a stable hash of the experiment and member ids: each "
    "arm takes its share, the rest are the `serving` arm (the current model). A `popular` arm "
    "gets the brand's non-personalised list; a `version` arm the lists of that model version.",
    responses={
        409: {"description": "ExperimentRunning (end it first), IdempotencyKeyReused"},
        422: {"description": "ValidationError (shares, names, version_id), UnknownModelVersion"},
    },
)
async def create_experiment(
    payload: ExperimentCreate,
    request: Request,
    session: SessionDep,
    staff: StaffWrite,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def work() -> ExperimentRead:
        experiment = await experiment_service.create(
            session, staff.brand_id, payload.name, [arm.arm() for arm in payload.arms]
        )
        return _experiment(experiment)

    return await IDEMPOTENCY.run(
        session,
        caller=staff,
        key=idempotency_key,
        fingerprint=request_hash(request.method, request.url.path, payload),
        status_code=201,
        work=work,
    )


@router.get(
    "/experiments", response_model=Page[ExperimentRead], summary="Experiments, newest first"
)
async def list_experiments(
    session: SessionDep, staff: StaffRead, page: PageDep
) -> Page[ExperimentRead]:
    rows = await experiment_service.page(session, staff.brand_id, page)
    return Page[ExperimentRead].of(rows, page, key=lambda e: e.id, item=_experiment)


@router.get(
    "/experiments/{experiment_id}",
    response_model=ExperimentRead,
    summary="An experiment",
    responses=_EXPERIMENT_404,
)
async def get_experiment(
    experiment_id: uuid.UUID, session: SessionDep, staff: StaffRead
) -> ExperimentRead:
    return _experiment(await experiment_service.get(session, staff.brand_id, experiment_id))


@router.post(
    "/experiments/{experiment_id}/end",
    response_model=ExperimentRead,
    summary="End an experiment: every member is served by the current model again",
    responses={**_EXPERIMENT_404, 409: {"description": "ExperimentEnded"}},
)
async def end_experiment(
    experiment_id: uuid.UUID, session: SessionDep, staff: StaffWrite
) -> ExperimentRead:
    return _experiment(await experiment_service.end(session, staff.brand_id, experiment_id))


@router.get(
    "/experiments/{experiment_id}/report",
    response_model=ExperimentReport,
    summary="Each arm's exposures, click rate and redemption rate",
    responses=_EXPERIMENT_404,
)
async def experiment_report(
    experiment_id: uuid.UUID, session: SessionDep, staff: StaffRead
) -> ExperimentReport:
    found = await experiment_service.report(session, staff.brand_id, experiment_id)
    return ExperimentReport(
        experiment=_experiment(found.experiment),
        attribution_days=experiment_service.ATTRIBUTION.days,
        arms=[
            ArmReport(
                arm=result.arm.name,
                policy=result.arm.policy.value,
                share=result.arm.share,
                members_exposed=result.counts.members,
                exposures=result.counts.exposures,
                items_shown=result.counts.items,
                clicks=result.counts.clicks,
                dismissals=result.counts.dismissals,
                click_rate=result.click_rate,
                redemptions=result.counts.redemptions,
                redemption_rate=result.redemption_rate,
            )
            for result in found.arms
        ],
    )
