"""All SQL of testimonials. Every query is scoped to a brand, or to an author resolved within
one. What is shown always joins the post as it is now: a post removed (or an author erased)
after it was featured drops out of every list at once, with nothing to clean up."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Row, Select, exists, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember, Post
from services.community.testimonials.models import FeaturedPost, FeatureStatus
from services.kernel.pagination import PageRequest, keyset

# A literal, so the planner can match the partial indexes under a generic plan.
_PUBLISHED: ColumnElement[str] = literal_column("'published'")


@dataclass(frozen=True, slots=True)
class TestimonialFilters:
    status: FeatureStatus | None = None
    sku: str | None = None


def _shown() -> Select[FeaturedPost, Post, str | None]:
    return (
        select(FeaturedPost, Post, CommunityMember.display_name)
        .join(Post, Post.id == FeaturedPost.post_id)
        .join(CommunityMember, CommunityMember.member_id == FeaturedPost.author_id)
    )


class TestimonialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, feature: FeaturedPost) -> bool:
        """False (nothing written) when the post already has an open feature: the unique partial
        index decides, so two staff featuring the same post at once get one request."""
        inserted = await self.session.scalar(
            insert(FeaturedPost)
            .values(
                id=feature.id,
                brand_id=feature.brand_id,
                post_id=feature.post_id,
                author_id=feature.author_id,
                status=feature.status,
                skus=feature.skus,
                note=feature.note,
                requested_by=feature.requested_by,
                requested_at=feature.requested_at,
            )
            .on_conflict_do_nothing(
                index_elements=[FeaturedPost.post_id],
                index_where=FeaturedPost.status.in_(
                    [literal_column("'requested'"), literal_column("'live'")]
                ),
            )
            .returning(FeaturedPost.id)
        )
        return inserted is not None

    async def declined(self, post_id: uuid.UUID) -> bool:
        return bool(
            await self.session.scalar(
                select(
                    exists().where(
                        FeaturedPost.post_id == post_id,
                        FeaturedPost.status == FeatureStatus.DECLINED,
                    )
                )
            )
        )

    async def get(
        self, brand_id: uuid.UUID, feature_id: uuid.UUID, *, for_update: bool = False
    ) -> FeaturedPost | None:
        statement = (
            select(FeaturedPost)
            .where(FeaturedPost.brand_id == brand_id, FeaturedPost.id == feature_id)
            .execution_options(populate_existing=True)
        )
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def shown(
        self, brand_id: uuid.UUID, feature_id: uuid.UUID
    ) -> Row[FeaturedPost, Post, str | None]:
        """A feature with its post and author's name (the feature was just found in the brand)."""
        return (
            await self.session.execute(
                _shown().where(FeaturedPost.brand_id == brand_id, FeaturedPost.id == feature_id)
            )
        ).one()

    async def page(
        self, brand_id: uuid.UUID, filters: TestimonialFilters, page: PageRequest
    ) -> Sequence[Row[FeaturedPost, Post, str | None]]:
        """Testimonials newest first. Live ones only while their post is published and their
        author not erased; staff asking for other statuses see them whatever the post became."""
        statement = _shown().where(FeaturedPost.brand_id == brand_id)
        if filters.status is not None:
            statement = statement.where(FeaturedPost.status == filters.status)
        if filters.status == FeatureStatus.LIVE:
            statement = statement.where(
                Post.status == _PUBLISHED, CommunityMember.member_status != "erased"
            )
        if filters.sku is not None:
            statement = statement.where(FeaturedPost.skus.contains([filters.sku]))
        rows = await self.session.execute(
            keyset(statement, FeaturedPost.id, page, newest_first=True)
        )
        return rows.all()

    async def requests_for(
        self, brand_id: uuid.UUID, author_id: uuid.UUID, page: PageRequest
    ) -> Sequence[Row[FeaturedPost, Post, str | None]]:
        """The author's open requests on posts still published, newest first."""
        statement = _shown().where(
            FeaturedPost.brand_id == brand_id,
            FeaturedPost.author_id == author_id,
            FeaturedPost.status == FeatureStatus.REQUESTED,
            Post.status == _PUBLISHED,
        )
        rows = await self.session.execute(
            keyset(statement, FeaturedPost.id, page, newest_first=True)
        )
        return rows.all()

    async def flush(self) -> None:
        await self.session.flush()
