"""REST for testimonials: staff feature posts, authors consent, the apps show them by sku."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import Query

from services.community.access import CurrentMember, ReadingActor, ReadingMember, StaffWrite
from services.community.testimonials import service
from services.community.testimonials.models import FeatureStatus
from services.community.testimonials.repository import TestimonialFilters
from services.community.testimonials.schemas import FeatureRequest, TestimonialRead
from services.kernel.db import SessionDep
from services.kernel.pagination import Page, PageDep, PageRequest
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: testimonials"])


def _page(rows: Sequence[service.Shown], page: PageRequest) -> Page[TestimonialRead]:
    return Page[TestimonialRead].of(
        rows, page, key=lambda row: row[0].id, item=lambda row: TestimonialRead.of(*row)
    )


@router.post(
    "/testimonials",
    status_code=201,
    response_model=TestimonialRead,
    summary="Ask a post's author to let the brand feature it (staff)",
    responses={
        404: {"description": "PostNotFound"},
        409: {"description": "PostNotPublished (held or removed), AlreadyFeatured, AuthorDeclined"},
    },
)
async def feature_post(
    payload: FeatureRequest, session: SessionDep, staff: StaffWrite
) -> TestimonialRead:
    return await service.request_feature(session, staff, payload)


@router.get(
    "/testimonials",
    response_model=Page[TestimonialRead],
    summary="Live testimonials, by sku, newest first (members and staff; staff: any status)",
    responses={403: {"description": "StaffOnlyFilter"}},
)
async def list_testimonials(
    session: SessionDep,
    viewer: ReadingActor,
    page: PageDep,
    sku: Annotated[
        str | None, Query(min_length=1, max_length=100, description="A product's sku.")
    ] = None,
    status: Annotated[
        FeatureStatus, Query(description="Other than `live`: staff only.")
    ] = FeatureStatus.LIVE,
) -> Page[TestimonialRead]:
    rows = await service.testimonials(
        session, viewer, TestimonialFilters(status=status, sku=sku), page
    )
    return _page(rows, page)


@router.post(
    "/testimonials/{testimonial_id}/unfeature",
    response_model=TestimonialRead,
    summary="Stop featuring a post, or withdraw the request (staff)",
    responses={404: {"description": "TestimonialNotFound"}, 409: {"description": "NotFeatured"}},
)
async def unfeature(
    testimonial_id: uuid.UUID, session: SessionDep, staff: StaffWrite
) -> TestimonialRead:
    return await service.unfeature(session, staff.brand_id, testimonial_id)


@router.get(
    "/me/testimonial-requests",
    response_model=Page[TestimonialRead],
    summary="The brand's requests to feature my posts, waiting for my answer",
)
async def my_requests(
    session: SessionDep, me: ReadingMember, page: PageDep
) -> Page[TestimonialRead]:
    return _page(await service.my_requests(session, me, page), page)


_ANSWER_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "TestimonialRequestNotFound, MemberNotFound"},
    409: {"description": "RequestAlreadyAnswered, PostNotPublished"},
}


@router.post(
    "/me/testimonial-requests/{testimonial_id}/accept",
    response_model=TestimonialRead,
    summary="Let the brand feature my post: it goes live",
    responses={**_ANSWER_ERRORS, 403: {"description": "MemberSuspended"}},
)
async def accept(
    testimonial_id: uuid.UUID, session: SessionDep, me: CurrentMember
) -> TestimonialRead:
    return await service.answer(session, me, testimonial_id, accept=True)


@router.post(
    "/me/testimonial-requests/{testimonial_id}/decline",
    response_model=TestimonialRead,
    summary="Decline: the brand will not feature this post",
    responses={**_ANSWER_ERRORS, 403: {"description": "MemberSuspended"}},
)
async def decline(
    testimonial_id: uuid.UUID, session: SessionDep, me: CurrentMember
) -> TestimonialRead:
    return await service.answer(session, me, testimonial_id, accept=False)
