"""Reputation and trust levels. Functions here never commit.

**Reputation** rises with approved contributions and with reactions from others, and falls when
content is removed:

| what                                               | member           | delta                   |
| -------------------------------------------------- | ---------------- | ----------------------- |
| a post approved (`post.approved`)                  | its author       | +10                     |
| a comment public (`comment.created` published, or `comment.approved`) | its author | +2     |
| a reaction from another member (`reaction.added`)  | the content's author | +1 per reaction     |
| that reaction taken back (`reaction.removed`)      | the content's author | what it gave        |
| a post or comment removed (`*.removed`)            | its author       | everything it earned    |

Each grant has a key (the post, the comment, or the reacting member with the target and the
kind), and the history (`reputation_events`) keeps every change with its reason and source event.
A grant is paid only while its key contributes nothing, and taken back only while it does, so an
approval reported twice pays once, and a reaction taken back after its content was removed takes
nothing more. Reacting to one's own content earns nothing. Changes of one member run one at a
time (their row is locked), so concurrent consumers never lose an update.

After each change the trust level follows the reputation (`trust.level_for`) unless staff set
it, and reputation badges whose threshold is now reached are awarded.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.abilities import Ability, abilities_at
from services.community.members.service import known_member
from services.community.models import CommunityMember
from services.community.reputation import badges
from services.community.reputation.models import ReputationEvent, ReputationReason
from services.community.reputation.repository import Change, ReputationRepository
from services.community.reputation.trust import level_for, next_threshold
from services.kernel.pagination import PageRequest

POINTS: dict[ReputationReason, int] = {
    ReputationReason.POST_APPROVED: 10,
    ReputationReason.COMMENT_APPROVED: 2,
    ReputationReason.REACTION_RECEIVED: 1,
}


@dataclass(frozen=True, slots=True)
class Standing:
    """A member's reputation and what it gives them."""

    member_id: uuid.UUID
    reputation: int
    trust_level: int
    trust_level_locked: bool
    abilities: list[Ability]
    next_level: int | None
    next_level_at: int | None

    @classmethod
    def of(cls, member: CommunityMember) -> Standing:
        following = next_threshold(member.trust_level)
        return cls(
            member_id=member.member_id,
            reputation=member.reputation,
            trust_level=member.trust_level,
            trust_level_locked=member.trust_level_locked,
            abilities=abilities_at(member.trust_level),
            next_level=following[0] if following else None,
            next_level_at=following[1] if following else None,
        )


def post_key(post_id: uuid.UUID) -> str:
    return f"post:{post_id}"


def comment_key(comment_id: uuid.UUID) -> str:
    return f"comment:{comment_id}"


def reaction_key(member_id: uuid.UUID, target_id: uuid.UUID, kind: str) -> str:
    return f"reaction:{member_id}:{target_id}:{kind}"


# --- Changes, from the consumer -----------------------------------------------------------------


async def grant(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    key: str,
    content_id: uuid.UUID,
    reason: ReputationReason,
    source_event_id: uuid.UUID,
    at: datetime,
) -> None:
    """Pays `POINTS[reason]` for `key`, unless the key contributes already."""
    repository = ReputationRepository(session)
    member = await repository.lock_member(brand_id, member_id)
    if member is None or await repository.key_net(member_id, key) != 0:
        return
    change = Change(key=key, content_id=content_id, delta=POINTS[reason], reason=reason)
    await _apply(session, member, [change], source_event_id, at)


async def revoke(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    key: str,
    content_id: uuid.UUID,
    reason: ReputationReason,
    source_event_id: uuid.UUID,
    at: datetime,
) -> None:
    """Takes back what `key` still contributes, if anything."""
    repository = ReputationRepository(session)
    member = await repository.lock_member(brand_id, member_id)
    if member is None:
        return
    net = await repository.key_net(member_id, key)
    if net == 0:
        return
    change = Change(key=key, content_id=content_id, delta=-net, reason=reason)
    await _apply(session, member, [change], source_event_id, at)


async def take_back(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    content_id: uuid.UUID,
    *,
    source_event_id: uuid.UUID,
    at: datetime,
) -> None:
    """Takes back everything a removed post or comment earned its author: its approval and the
    reactions it received."""
    repository = ReputationRepository(session)
    member = await repository.lock_member(brand_id, member_id)
    if member is None:
        return
    changes = [
        Change(key=key, content_id=content_id, delta=-net, reason=ReputationReason.CONTENT_REMOVED)
        for key, net in await repository.outstanding_under(member_id, content_id)
    ]
    await _apply(session, member, changes, source_event_id, at)


async def _apply(
    session: AsyncSession,
    member: CommunityMember,
    changes: Sequence[Change],
    source_event_id: uuid.UUID,
    at: datetime,
) -> None:
    repository = ReputationRepository(session)
    delta = await repository.record(
        member.brand_id, member.member_id, changes, source_event_id=source_event_id, at=at
    )
    if delta == 0:
        return
    reputation = member.reputation + delta
    level = member.trust_level if member.trust_level_locked else level_for(reputation)
    await repository.set_standing(
        member,
        reputation=reputation,
        trust_level=level,
        locked=member.trust_level_locked,
    )
    if delta > 0:
        await badges.award_for_reputation(
            session, member.brand_id, member.member_id, reputation, at=at
        )


# --- Reading and staff decisions ---------------------------------------------------------------


async def standing(session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID) -> Standing:
    return Standing.of(await known_member(session, brand_id, member_id))


async def history(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID, page: PageRequest
) -> Sequence[ReputationEvent]:
    await known_member(session, brand_id, member_id)
    return await ReputationRepository(session).history(brand_id, member_id, page)


async def set_trust_level(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID, level: int
) -> Standing:
    """Staff set the level (level 4, leader, is usually granted this way); it stays locked there
    whatever the reputation does, until `unlock_trust_level`."""
    member = await _locked_member(session, brand_id, member_id)
    await ReputationRepository(session).set_standing(
        member, reputation=member.reputation, trust_level=level, locked=True
    )
    return Standing.of(member)


async def unlock_trust_level(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID
) -> Standing:
    """The level follows the reputation again, starting now."""
    member = await _locked_member(session, brand_id, member_id)
    level = level_for(member.reputation)
    await ReputationRepository(session).set_standing(
        member, reputation=member.reputation, trust_level=level, locked=False
    )
    return Standing.of(member)


async def _locked_member(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID
) -> CommunityMember:
    await known_member(session, brand_id, member_id)  # 404 for unknown, erased or foreign
    member = await ReputationRepository(session).lock_member(brand_id, member_id)
    assert member is not None  # known a moment ago, and members rows are never deleted
    return member
