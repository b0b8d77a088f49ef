"""All SQL of the ideas board. Every query is scoped to a brand, or to an idea already found
within the caller's brand."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Row, and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from services.community.ideas.models import (
    Idea,
    IdeaCategory,
    IdeaComment,
    IdeaStatus,
    IdeaVote,
)
from services.community.ideas.paging import BoardPage
from services.community.models import CommunityMember
from services.kernel.pagination import PageRequest, keyset


@dataclass(frozen=True, slots=True)
class BoardFilters:
    by_votes: bool
    status: IdeaStatus | None = None
    category: IdeaCategory | None = None


class IdeaRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- ideas ---

    async def add(self, idea: Idea) -> None:
        self.session.add(idea)
        await self.session.flush()

    async def get(
        self, brand_id: uuid.UUID, idea_id: uuid.UUID, *, for_update: bool = False
    ) -> Idea | None:
        """The idea as the database has it now. `for_update` serialises votes and answers on
        one idea, so its counter and the voters an answer lists stay consistent."""
        statement = (
            select(Idea)
            .where(Idea.brand_id == brand_id, Idea.id == idea_id)
            .execution_options(populate_existing=True)
        )
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def display_name(self, member_id: uuid.UUID) -> str | None:
        return await self.session.scalar(
            select(CommunityMember.display_name).where(CommunityMember.member_id == member_id)
        )

    async def board(
        self, brand_id: uuid.UUID, filters: BoardFilters, page: BoardPage
    ) -> Sequence[Row[Idea, str | None]]:
        """One page of the board plus one row (to tell whether another follows)."""
        statement = (
            select(Idea, CommunityMember.display_name)
            .outerjoin(CommunityMember, CommunityMember.member_id == Idea.author_id)
            .where(Idea.brand_id == brand_id)
        )
        if filters.status is not None:
            statement = statement.where(Idea.status == filters.status)
        if filters.category is not None:
            statement = statement.where(Idea.category == filters.category)
        after = page.after
        if filters.by_votes:
            if after is not None:
                statement = statement.where(
                    or_(
                        Idea.vote_count < after.vote_count,
                        and_(Idea.vote_count == after.vote_count, Idea.id < after.idea_id),
                    )
                )
            statement = statement.order_by(Idea.vote_count.desc(), Idea.id.desc())
        else:
            if after is not None:
                statement = statement.where(Idea.id < after.idea_id)
            statement = statement.order_by(Idea.id.desc())
        return (await self.session.execute(statement.limit(page.limit + 1))).all()

    # --- votes ---

    async def voted(self, member_id: uuid.UUID, idea_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these ideas the member voted for."""
        if not idea_ids:
            return set()
        rows = await self.session.scalars(
            select(IdeaVote.idea_id).where(
                IdeaVote.member_id == member_id, IdeaVote.idea_id.in_(idea_ids)
            )
        )
        return set(rows)

    async def add_vote(self, vote: IdeaVote) -> bool:
        """False (and nothing written) when the member already voted for the idea. A concurrent
        vote by the same member waits on the unique key, then finds it taken."""
        inserted = await self.session.scalar(
            insert(IdeaVote)
            .values(
                id=vote.id,
                brand_id=vote.brand_id,
                idea_id=vote.idea_id,
                member_id=vote.member_id,
                created_at=vote.created_at,
            )
            .on_conflict_do_nothing(index_elements=[IdeaVote.idea_id, IdeaVote.member_id])
            .returning(IdeaVote.id)
        )
        return inserted is not None

    async def remove_vote(self, idea_id: uuid.UUID, member_id: uuid.UUID) -> bool:
        removed = await self.session.scalar(
            delete(IdeaVote)
            .where(IdeaVote.idea_id == idea_id, IdeaVote.member_id == member_id)
            .returning(IdeaVote.id)
        )
        return removed is not None

    async def count_vote(self, idea: Idea, delta: int) -> None:
        """Moves the idea's counter in SQL (never from a stale Python value) and refreshes it."""
        count = (
            await self.session.execute(
                update(Idea)
                .where(Idea.id == idea.id)
                .values(vote_count=Idea.vote_count + delta)
                .returning(Idea.vote_count)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one()
        set_committed_value(idea, "vote_count", count)

    async def voters(self, idea_id: uuid.UUID, page: PageRequest) -> Sequence[IdeaVote]:
        """The idea's votes in the order they were cast, one page plus one row."""
        statement = select(IdeaVote).where(IdeaVote.idea_id == idea_id)
        return (await self.session.scalars(keyset(statement, IdeaVote.id, page))).all()

    # --- comments ---

    async def add_comment(self, idea: Idea, comment: IdeaComment) -> None:
        self.session.add(comment)
        await self.session.flush()
        count = (
            await self.session.execute(
                update(Idea)
                .where(Idea.id == idea.id)
                .values(comment_count=Idea.comment_count + 1)
                .returning(Idea.comment_count)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one()
        set_committed_value(idea, "comment_count", count)

    async def comments(
        self, idea_id: uuid.UUID, page: PageRequest
    ) -> Sequence[Row[IdeaComment, str | None]]:
        """Comments oldest first (the conversation's order), with their authors' names."""
        statement = (
            select(IdeaComment, CommunityMember.display_name)
            .outerjoin(CommunityMember, CommunityMember.member_id == IdeaComment.author_id)
            .where(IdeaComment.idea_id == idea_id)
        )
        return (await self.session.execute(keyset(statement, IdeaComment.id, page))).all()
