"""Testimonials: the brand features members' posts and reviews next to its products, with each
author's consent. Never commits.

1. Staff ask to feature a post (`request_feature`): it must be in the brand (`PostNotFound`) and
   published (`PostNotPublished`, 409, for held or removed posts). A post has at most one open
   request or live feature (`AlreadyFeatured`), and once its author declined, the brand does not
   ask again for it (`AuthorDeclined`). The post row is locked meanwhile, so a removal cannot
   slip in between the check and the request.
2. The author sees the request (`/me/testimonial-requests`) and accepts or declines it. Another
   member's request is `TestimonialRequestNotFound` (404, like one of another brand); a request
   already answered or withdrawn is `RequestAlreadyAnswered`. Accepting checks again that the post
   is still published, makes the testimonial live and emits `post.featured`, which tells the
   author.
3. Staff can unfeature (withdraw) an open request or a live testimonial at any time.

Live testimonials are listed by sku for the apps (members and staff), newest first. A live one
whose post was removed since, or whose author was erased, drops out of the list by itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import Actor
from services.community.models import OUTBOX, CommunityMember, ContentStatus, Post
from services.community.posts.errors import PostNotFound
from services.community.posts.repository import PostRepository
from services.community.testimonials.errors import (
    AlreadyFeatured,
    AuthorDeclined,
    NotFeatured,
    PostNotPublished,
    RequestAlreadyAnswered,
    StaffOnlyFilter,
    TestimonialNotFound,
    TestimonialRequestNotFound,
)
from services.community.testimonials.events import PostFeatured, PostFeaturedData
from services.community.testimonials.models import FeaturedPost, FeatureStatus
from services.community.testimonials.repository import TestimonialFilters, TestimonialRepository
from services.community.testimonials.schemas import FeatureRequest, TestimonialRead
from services.kernel.auth import StaffPrincipal
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest

Shown = Row[FeaturedPost, Post, str | None]

OPEN: frozenset[FeatureStatus] = frozenset({FeatureStatus.REQUESTED, FeatureStatus.LIVE})


def _skus(post: Post) -> list[str]:
    """The products a post is about: the reviewed sku first, then those it mentions."""
    named = [post.review_sku] if post.review_sku is not None else []
    return list(dict.fromkeys([*named, *post.skus]))


async def _published_post(session: AsyncSession, brand_id: uuid.UUID, post_id: uuid.UUID) -> Post:
    """The post, locked against a concurrent removal, which must be published."""
    post = await PostRepository(session).get(brand_id, post_id, for_update=True)
    if post is None:
        raise PostNotFound(f"No post {post_id} in this brand.")
    if post.status != ContentStatus.PUBLISHED:
        raise PostNotPublished(
            f"This post is {post.status.value}: only published posts and reviews can be featured."
        )
    return post


async def _read(testimonials: TestimonialRepository, feature: FeaturedPost) -> TestimonialRead:
    return TestimonialRead.of(*await testimonials.shown(feature.brand_id, feature.id))


# --- Staff --------------------------------------------------------------------------------------


async def request_feature(
    session: AsyncSession,
    staff: StaffPrincipal,
    payload: FeatureRequest,
    now: datetime | None = None,
) -> TestimonialRead:
    testimonials = TestimonialRepository(session)
    post = await _published_post(session, staff.brand_id, payload.post_id)
    if await testimonials.declined(post.id):
        raise AuthorDeclined("The author declined to have this post featured.")
    feature = FeaturedPost(
        id=new_id(),
        brand_id=staff.brand_id,
        post_id=post.id,
        author_id=post.author_id,
        status=FeatureStatus.REQUESTED,
        skus=_skus(post),
        note=payload.note,
        requested_by=staff.key_id,
        requested_at=now or utcnow(),
    )
    if not await testimonials.add(feature):
        raise AlreadyFeatured("This post already has an open testimonial request or is live.")
    return await _read(testimonials, feature)


async def unfeature(
    session: AsyncSession,
    brand_id: uuid.UUID,
    feature_id: uuid.UUID,
    now: datetime | None = None,
) -> TestimonialRead:
    testimonials = TestimonialRepository(session)
    feature = await testimonials.get(brand_id, feature_id, for_update=True)
    if feature is None:
        raise TestimonialNotFound(f"No testimonial {feature_id} in this brand.")
    if feature.status not in OPEN:
        raise NotFeatured(f"This testimonial is {feature.status.value}: nothing to unfeature.")
    feature.status = FeatureStatus.WITHDRAWN
    feature.withdrawn_at = now or utcnow()
    await testimonials.flush()
    return await _read(testimonials, feature)


async def testimonials(
    session: AsyncSession, viewer: Actor, filters: TestimonialFilters, page: PageRequest
) -> Sequence[Shown]:
    """Live testimonials (by sku) for everyone; staff may list any status."""
    if not viewer.is_staff and filters.status != FeatureStatus.LIVE:
        raise StaffOnlyFilter("Members see live testimonials only: leave `status` out.")
    return await TestimonialRepository(session).page(viewer.brand_id, filters, page)


# --- The author ---------------------------------------------------------------------------------


async def my_requests(
    session: AsyncSession, member: CommunityMember, page: PageRequest
) -> Sequence[Shown]:
    return await TestimonialRepository(session).requests_for(
        member.brand_id, member.member_id, page
    )


async def answer(
    session: AsyncSession,
    member: CommunityMember,
    feature_id: uuid.UUID,
    *,
    accept: bool,
    now: datetime | None = None,
) -> TestimonialRead:
    now = now or utcnow()
    testimonials = TestimonialRepository(session)
    feature = await testimonials.get(member.brand_id, feature_id, for_update=True)
    if feature is None or feature.author_id != member.member_id:
        raise TestimonialRequestNotFound(f"No testimonial request {feature_id} for you.")
    if feature.status != FeatureStatus.REQUESTED:
        raise RequestAlreadyAnswered(f"This request is already {feature.status.value}.")
    if not accept:
        feature.status = FeatureStatus.DECLINED
        feature.answered_at = now
        await testimonials.flush()
        return await _read(testimonials, feature)
    post = await _published_post(session, member.brand_id, feature.post_id)
    feature.status = FeatureStatus.LIVE
    feature.answered_at = now
    await testimonials.flush()
    await OUTBOX.add(
        session,
        PostFeatured(
            brand_id=feature.brand_id,
            subject_id=feature.author_id,
            occurred_at=now,
            data=PostFeaturedData(
                testimonial_id=feature.id,
                post_id=post.id,
                author_id=feature.author_id,
                kind=post.kind,
                review_sku=post.review_sku,
                skus=feature.skus,
                featured_at=now,
            ),
        ),
    )
    return await _read(testimonials, feature)
