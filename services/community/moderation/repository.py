"""All SQL of moderation. Every query is scoped by brand (or by a row already resolved within
the brand)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    any_,
    bindparam,
    case,
    cast,
    delete,
    distinct,
    func,
    literal,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, array, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text

from services.community.models import Comment, Post
from services.community.moderation.models import (
    BlockedTerm,
    Classifier,
    Decision,
    Label,
    ModerationSettings,
    Report,
    ReportStatus,
    TargetKind,
    TrainingExample,
)
from services.kernel.pagination import PageRequest, keyset


class ReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_open(self, values: dict[str, Any]) -> Report | None:
        """Insert an open report; None when the reporter already has one open on the target
        (the unique partial index decides, so two racing reports make one)."""
        return await self.session.scalar(
            insert(Report)
            .values(status=ReportStatus.OPEN, **values)
            .on_conflict_do_nothing(
                index_elements=[Report.reporter_id, Report.target_kind, Report.target_id],
                index_where=Report.status == literal_column("'open'"),
            )
            .returning(Report)
        )

    async def open_by(
        self, reporter_id: uuid.UUID, target_kind: TargetKind, target_id: uuid.UUID
    ) -> Report | None:
        return await self.session.scalar(
            select(Report).where(
                Report.reporter_id == reporter_id,
                Report.target_kind == target_kind,
                Report.target_id == target_id,
                Report.status == ReportStatus.OPEN,
            )
        )

    async def resolve_open(
        self,
        brand_id: uuid.UUID,
        target_kind: TargetKind,
        target_id: uuid.UUID,
        decision_id: uuid.UUID,
        at: datetime,
    ) -> list[uuid.UUID]:
        """Resolve every open report on the target with the decision; their ids, oldest first."""
        rows = await self.session.scalars(
            update(Report)
            .where(
                Report.brand_id == brand_id,
                Report.target_kind == target_kind,
                Report.target_id == target_id,
                Report.status == ReportStatus.OPEN,
            )
            .values(status=ReportStatus.RESOLVED, decision_id=decision_id, resolved_at=at)
            .returning(Report.id)
        )
        return sorted(rows)

    async def page(
        self,
        brand_id: uuid.UUID,
        page: PageRequest,
        *,
        reporter_id: uuid.UUID | None = None,
        status: ReportStatus | None = None,
        target_id: uuid.UUID | None = None,
    ) -> Sequence[Report]:
        statement = select(Report).where(Report.brand_id == brand_id)
        if reporter_id is not None:
            statement = statement.where(Report.reporter_id == reporter_id)
        if status is not None:
            statement = statement.where(Report.status == status)
        if target_id is not None:
            statement = statement.where(Report.target_id == target_id)
        return (await self.session.scalars(keyset(statement, Report.id, page))).all()


class DecisionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, decision: Decision) -> Decision:
        self.session.add(decision)
        await self.session.flush()
        await self.session.refresh(decision)
        return decision

    async def set_resolved(self, decision: Decision, count: int) -> None:
        decision.resolved_reports = count
        await self.session.flush()

    async def page(
        self,
        brand_id: uuid.UUID,
        page: PageRequest,
        *,
        target_id: uuid.UUID | None = None,
        author_id: uuid.UUID | None = None,
    ) -> Sequence[Decision]:
        statement = select(Decision).where(Decision.brand_id == brand_id)
        if target_id is not None:
            statement = statement.where(Decision.target_id == target_id)
        if author_id is not None:
            statement = statement.where(Decision.target_author_id == author_id)
        return (await self.session.scalars(keyset(statement, Decision.id, page))).all()


class BlocklistRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def terms(self, brand_id: uuid.UUID) -> list[str]:
        rows = await self.session.scalars(
            select(BlockedTerm.term).where(BlockedTerm.brand_id == brand_id)
        )
        return list(rows)

    async def add(self, brand_id: uuid.UUID, term_id: uuid.UUID, term: str) -> BlockedTerm | None:
        """None when the brand already has the term."""
        return await self.session.scalar(
            insert(BlockedTerm)
            .values(id=term_id, brand_id=brand_id, term=term)
            .on_conflict_do_nothing(index_elements=[BlockedTerm.brand_id, BlockedTerm.term])
            .returning(BlockedTerm)
        )

    async def delete(self, brand_id: uuid.UUID, term_id: uuid.UUID) -> bool:
        deleted = await self.session.scalar(
            delete(BlockedTerm)
            .where(BlockedTerm.brand_id == brand_id, BlockedTerm.id == term_id)
            .returning(BlockedTerm.id)
        )
        return deleted is not None

    async def page(self, brand_id: uuid.UUID, page: PageRequest) -> Sequence[BlockedTerm]:
        statement = select(BlockedTerm).where(BlockedTerm.brand_id == brand_id)
        return (await self.session.scalars(keyset(statement, BlockedTerm.id, page))).all()


class SettingsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, brand_id: uuid.UUID) -> ModerationSettings | None:
        return await self.session.scalar(
            select(ModerationSettings)
            .where(ModerationSettings.brand_id == brand_id)
            .execution_options(populate_existing=True)
        )

    async def put(self, brand_id: uuid.UUID, values: dict[str, Any]) -> ModerationSettings:
        row = await self.session.scalar(
            insert(ModerationSettings)
            .values(brand_id=brand_id, **values)
            .on_conflict_do_update(
                index_elements=[ModerationSettings.brand_id],
                set_={**values, "updated_at": func.now()},
            )
            .returning(ModerationSettings)
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row


class TrainingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_examples(self, rows: list[dict[str, Any]]) -> None:
        await self.session.execute(insert(TrainingExample), rows)

    async def count(self, brand_id: uuid.UUID) -> int:
        total = await self.session.scalar(
            select(func.count()).where(TrainingExample.brand_id == brand_id)
        )
        return int(total or 0)

    async def examples(self, brand_id: uuid.UUID) -> list[tuple[str, Label]]:
        rows = await self.session.execute(
            select(TrainingExample.text, TrainingExample.label)
            .where(TrainingExample.brand_id == brand_id)
            .order_by(TrainingExample.id)
        )
        return [(text, label) for text, label in rows]

    async def page(self, brand_id: uuid.UUID, page: PageRequest) -> Sequence[TrainingExample]:
        statement = select(TrainingExample).where(TrainingExample.brand_id == brand_id)
        return (await self.session.scalars(keyset(statement, TrainingExample.id, page))).all()

    async def delete_example(self, brand_id: uuid.UUID, example_id: uuid.UUID) -> bool:
        deleted = await self.session.scalar(
            delete(TrainingExample)
            .where(TrainingExample.brand_id == brand_id, TrainingExample.id == example_id)
            .returning(TrainingExample.id)
        )
        return deleted is not None

    async def classifier(self, brand_id: uuid.UUID) -> Classifier | None:
        return await self.session.scalar(
            select(Classifier)
            .where(Classifier.brand_id == brand_id)
            .execution_options(populate_existing=True)
        )

    async def classifier_version(self, brand_id: uuid.UUID) -> tuple[int, datetime] | None:
        """Just the version and training time: screening asks this on every post and loads the
        parameters only when they changed."""
        row = (
            await self.session.execute(
                select(Classifier.version, Classifier.trained_at).where(
                    Classifier.brand_id == brand_id
                )
            )
        ).one_or_none()
        return (row.version, row.trained_at) if row is not None else None

    async def save_classifier(
        self,
        brand_id: uuid.UUID,
        *,
        parameters: dict[str, Any],
        example_count: int,
        label_counts: dict[str, int],
        trained_at: datetime,
    ) -> Classifier:
        """Store a newly trained model as the brand's next version."""
        values = {
            "parameters": parameters,
            "example_count": example_count,
            "label_counts": label_counts,
            "trained_at": trained_at,
        }
        row = await self.session.scalar(
            insert(Classifier)
            .values(brand_id=brand_id, version=1, **values)
            .on_conflict_do_update(
                index_elements=[Classifier.brand_id],
                set_={**values, "version": Classifier.version + 1},
            )
            .returning(Classifier)
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row


@dataclass(frozen=True, slots=True)
class Copies:
    """Recent posts and comments with the same body: by the author, and by how many others."""

    by_author: int
    other_authors: int


@dataclass(frozen=True, slots=True)
class Copy:
    """A post or comment with a given body hash: who wrote it and when (duplicate screening)."""

    body_hash: str
    author_id: uuid.UUID
    created_at: datetime


_HASHES = bindparam("hashes", type_=ARRAY(Text))


class ScreeningRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def copies_between(
        self,
        brand_id: uuid.UUID,
        hashes: Collection[str],
        since: datetime,
        until: datetime,
        first_id: uuid.UUID,
    ) -> list[Copy]:
        """Posts and comments (any status, as screening counts them) with one of these body
        hashes written from `since` to `until`, inclusive. `first_id` is the smallest id such
        content can have (ids are UUIDv7s made at or after `created_at`): the brand's id
        indexes then narrow the search to the window, not the brand's whole history."""
        if not hashes:
            return []
        parts = [
            select(table.body_hash, table.author_id, table.created_at).where(
                table.brand_id == brand_id,
                table.id >= first_id,
                table.body_hash == any_(_HASHES),
                table.created_at >= since,
                table.created_at <= until,
            )
            for table in (Post, Comment)
        ]
        rows = await self.session.execute(union_all(*parts), {"hashes": list(hashes)})
        return [Copy(body_hash, author_id, at) for body_hash, author_id, at in rows]

    async def copies(
        self,
        brand_id: uuid.UUID,
        author_id: uuid.UUID,
        body_hash: str,
        since: datetime,
        exclude_id: uuid.UUID | None,
    ) -> Copies:
        """Posts and comments (any status: removed spam still counts) with this body hash
        written since `since`."""
        parts = [
            select(table.author_id.label("author_id")).where(
                table.brand_id == brand_id,
                table.body_hash == body_hash,
                table.created_at >= since,
                *([table.id != exclude_id] if exclude_id is not None else []),
            )
            for table in (Post, Comment)
        ]
        copies = union_all(*parts).subquery()
        row = (
            await self.session.execute(
                select(
                    func.count().filter(copies.c.author_id == author_id),
                    func.count(distinct(copies.c.author_id)).filter(
                        copies.c.author_id != author_id
                    ),
                )
            )
        ).one()
        return Copies(by_author=int(row[0]), other_authors=int(row[1]))


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: uuid.UUID
    item: str
    target_kind: TargetKind
    target_id: uuid.UUID
    target_author_id: uuid.UUID
    group_id: uuid.UUID | None
    reasons: list[str]
    text: str | None
    reporter_id: uuid.UUID | None
    body: str | None
    created_at: datetime


class QueueRepository:
    """The moderation queue: open reports and held posts and comments in one keyset walk by id.
    Every id is a UUIDv7, so ordering the union by id is ordering it by creation time."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self,
        brand_id: uuid.UUID,
        page: PageRequest,
        *,
        group_ids: list[uuid.UUID] | None,
    ) -> list[QueueRow]:
        """`group_ids` None: the whole brand (staff); otherwise only content in those groups."""
        reported_post = select(Post.body).where(Post.id == Report.target_id).scalar_subquery()
        reported_comment = (
            select(Comment.body).where(Comment.id == Report.target_id).scalar_subquery()
        )
        reports: Select[Any] = select(
            Report.id.label("id"),
            literal("report").label("item"),
            Report.target_kind.label("target_kind"),
            Report.target_id.label("target_id"),
            Report.target_author_id.label("target_author_id"),
            Report.group_id.label("group_id"),
            array([cast(Report.reason, Text)]).label("reasons"),
            Report.note.label("text"),
            Report.reporter_id.label("reporter_id"),
            case(
                (Report.target_kind == literal_column("'post'"), reported_post),
                (Report.target_kind == literal_column("'comment'"), reported_comment),
                else_=null(),
            ).label("body"),
            Report.created_at.label("created_at"),
        ).where(Report.brand_id == brand_id, Report.status == literal_column("'open'"))
        posts = select(
            Post.id,
            literal("held"),
            literal(TargetKind.POST.value),
            Post.id,
            Post.author_id,
            Post.group_id,
            Post.held_reasons,
            null(),
            null(),
            Post.body,
            Post.created_at,
        ).where(Post.brand_id == brand_id, Post.status == literal_column("'held'"))
        comment_group = select(Post.group_id).where(Post.id == Comment.post_id).scalar_subquery()
        comments = select(
            Comment.id,
            literal("held"),
            literal(TargetKind.COMMENT.value),
            Comment.id,
            Comment.author_id,
            comment_group,
            Comment.held_reasons,
            null(),
            null(),
            Comment.body,
            Comment.created_at,
        ).where(Comment.brand_id == brand_id, Comment.status == literal_column("'held'"))
        if group_ids is not None:
            reports = reports.where(Report.group_id.in_(group_ids))
            posts = posts.where(Post.group_id.in_(group_ids))
            comments = comments.where(comment_group.in_(group_ids))
        page.forwards_only()  # the queue merges three tables by id; it walks one way
        if page.after is not None:
            reports = reports.where(Report.id > page.after)
            posts = posts.where(Post.id > page.after)
            comments = comments.where(Comment.id > page.after)
        queue = union_all(reports, posts, comments).subquery()
        rows = await self.session.execute(select(queue).order_by(queue.c.id).limit(page.limit + 1))
        return [
            QueueRow(
                id=row.id,
                item=row.item,
                target_kind=TargetKind(row.target_kind),
                target_id=row.target_id,
                target_author_id=row.target_author_id,
                group_id=row.group_id,
                reasons=list(row.reasons),
                text=row.text,
                reporter_id=row.reporter_id,
                body=row.body,
                created_at=row.created_at,
            )
            for row in rows
        ]
