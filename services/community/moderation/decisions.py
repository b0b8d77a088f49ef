"""Moderation decisions and the queue they are made from.

**Who decides.** The brand's staff (`community:write`) on anything in the brand. A group
moderator (a member with the moderator role, active in a live group) only on posts and comments
in the groups they moderate (403 `NotAModerator` otherwise, members included), never on their own
content (403 `CannotModerateSelf`), and never `suspend` (403 `SuspendNeedsStaff`).

**What each action does.**
- `approve`: held content is published (`approve_post` / `approve_comment`, with their events);
  published content stays as it is (the reports on it are dismissed).
- `remove`: the content is removed from every feed (`remove_post` / `remove_comment`, by
  `moderator`, with the decision's reason).
- `warn`: nothing changes but the record; the author hears of it through `moderation.decided`.
- `suspend`: the author (or the reported member) is suspended from the community for
  `suspend_days`, or indefinitely when omitted; they may still read.

`approve` and `remove` need content (422 `ActionNotApplicable` for a member); neither applies to
removed content (409 `AlreadyRemoved`). Every decision is recorded with who made it (the staff
key or the moderator), why and when, resolves every open report on its target, and emits
`moderation.decided` in the same transaction. Any refusal writes nothing.

**The queue** lists open reports and held posts and comments together, oldest first (keyset
pages): the whole brand for staff, only the content of their groups for group moderators (a
member who moderates no group gets 403 `NotAModerator`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import Actor
from services.community.groups.repository import GroupRepository
from services.community.members.repository import CommunityMemberRepository
from services.community.models import OUTBOX, Comment, ContentStatus, Post
from services.community.moderation.errors import (
    ActionNotApplicable,
    AlreadyRemoved,
    CannotModerateSelf,
    NotAModerator,
    SuspendNeedsStaff,
)
from services.community.moderation.events import DecidedData, ModerationDecided
from services.community.moderation.models import Action, Decision
from services.community.moderation.repository import (
    DecisionRepository,
    QueueRepository,
    QueueRow,
    ReportRepository,
)
from services.community.moderation.schemas import DecisionCreate
from services.community.moderation.targets import Target, find_target
from services.community.posts.service import (
    approve_comment,
    approve_post,
    remove_comment,
    remove_post,
)
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest

# An indefinite suspension ends at a real (if distant) time, not `datetime.max`: asyncpg writes
# that as PostgreSQL's `infinity` and reads `infinity` back as a *naive* datetime, which cannot be
# compared with the aware times everywhere else.
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


async def _check_authority(
    session: AsyncSession, actor: Actor, target: Target, action: Action
) -> None:
    member = actor.member
    if member is None:
        return
    if action == Action.SUSPEND:
        raise SuspendNeedsStaff()
    if target.author_id == member.member_id:
        raise CannotModerateSelf()
    moderated = await GroupRepository(session).moderated_group_ids(actor.brand_id, member.member_id)
    if target.group_id is None or target.group_id not in moderated:
        raise NotAModerator(
            "Group moderators decide only on posts and comments in the groups they moderate."
        )


async def _apply(
    session: AsyncSession, actor: Actor, target: Target, payload: DecisionCreate, now: datetime
) -> datetime | None:
    """Carry the action out; for a suspension, the stored end (None: indefinitely)."""
    action = payload.action
    if action in (Action.APPROVE, Action.REMOVE):
        content = target.content
        if content is None:
            raise ActionNotApplicable()
        if target.status == ContentStatus.REMOVED:
            raise AlreadyRemoved()
        if action == Action.APPROVE:
            if isinstance(content, Post):
                await approve_post(session, content)
            else:
                assert isinstance(content, Comment)
                await approve_comment(session, content)
        elif isinstance(content, Post):
            await remove_post(session, content, removed_by="moderator", reason=payload.reason)
        else:
            assert isinstance(content, Comment)
            await remove_comment(session, content, removed_by="moderator", reason=payload.reason)
        return None
    if action == Action.SUSPEND:
        days = payload.suspend_days
        until = now + timedelta(days=days) if days is not None else None
        await CommunityMemberRepository(session).suspend(
            actor.brand_id, target.author_id, until or FOREVER
        )
        return until
    return None


async def decide(session: AsyncSession, actor: Actor, payload: DecisionCreate) -> Decision:
    target = await find_target(session, actor.brand_id, payload.target_kind, payload.target_id)
    await _check_authority(session, actor, target, payload.action)
    now = utcnow()
    suspended_until = await _apply(session, actor, target, payload, now)
    decision = await DecisionRepository(session).add(
        Decision(
            id=new_id(),
            brand_id=actor.brand_id,
            target_kind=target.kind,
            target_id=target.id,
            target_author_id=target.author_id,
            group_id=target.group_id,
            action=payload.action,
            reason=payload.reason,
            suspend_days=payload.suspend_days,
            suspended_until=suspended_until,
            decided_by_key_id=actor.staff.key_id if actor.staff is not None else None,
            decided_by_member_id=actor.member_id,
            resolved_reports=0,
            created_at=now,
        )
    )
    resolved = await ReportRepository(session).resolve_open(
        actor.brand_id, target.kind, target.id, decision.id, now
    )
    await DecisionRepository(session).set_resolved(decision, len(resolved))
    await OUTBOX.add(
        session,
        ModerationDecided(
            brand_id=actor.brand_id,
            subject_id=target.author_id,
            occurred_at=now,
            data=DecidedData(
                decision_id=decision.id,
                target_kind=target.kind,
                target_id=target.id,
                target_author_id=target.author_id,
                group_id=target.group_id,
                action=payload.action,
                reason=payload.reason,
                suspended_until=suspended_until,
                decided_by_key_id=decision.decided_by_key_id,
                decided_by_member_id=decision.decided_by_member_id,
                resolved_report_ids=resolved,
            ),
        ),
    )
    return decision


async def list_decisions(
    session: AsyncSession,
    brand_id: uuid.UUID,
    page: PageRequest,
    *,
    target_id: uuid.UUID | None,
    author_id: uuid.UUID | None,
) -> Sequence[Decision]:
    return await DecisionRepository(session).page(
        brand_id, page, target_id=target_id, author_id=author_id
    )


async def queue(session: AsyncSession, actor: Actor, page: PageRequest) -> list[QueueRow]:
    if actor.member is None:
        return await QueueRepository(session).page(actor.brand_id, page, group_ids=None)
    moderated = await GroupRepository(session).moderated_group_ids(
        actor.brand_id, actor.member.member_id
    )
    if not moderated:
        raise NotAModerator("Only staff and group moderators have a moderation queue.")
    return await QueueRepository(session).page(actor.brand_id, page, group_ids=moderated)
