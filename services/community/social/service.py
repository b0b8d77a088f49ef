"""Follows, blocks and mutes between members of one brand. Functions here never commit.

- **Follow**: `follower` sees `followee`'s published posts in their following feed. Following
  yourself is refused (422 `CannotFollowYourself`); following someone when either of you blocked
  the other is refused (403 `MemberBlocked`). Following twice changes nothing and emits nothing
  the second time; `member.followed` goes out once per new follow, `member.unfollowed` when one
  ends.
- **Block**: the two no longer see each other's posts in any feed, list or comment thread, and
  cannot follow, comment on or react to each other's content. Blocking ends the follows between
  them, both ways. It is one-sided to undo: only the blocker can unblock.
- **Mute**: the muted member's posts leave the muter's feeds; nothing else changes and the muted
  member is not told.

The other member must be a member of the caller's brand (404 `MemberNotFound` otherwise, for
members of another brand too). One who joined a moment ago, whose `member.created` has not
reached the community, is asked of the `directory` when given (see `kernel.member_directory`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.service import known_member
from services.community.models import OUTBOX, CommunityMember
from services.community.social.errors import (
    CannotBlockYourself,
    CannotFollowYourself,
    CannotMuteYourself,
    MemberBlocked,
)
from services.community.social.events import FollowData, MemberFollowed, MemberUnfollowed
from services.community.social.models import Block, Follow, Mute
from services.community.social.repository import Relation, SocialRepository
from services.kernel.clock import utcnow
from services.kernel.member_directory import MemberDirectory
from services.kernel.pagination import PageRequest


async def ensure_not_blocked(session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> None:
    """403 `MemberBlocked` if either member blocked the other."""
    if a != b and await SocialRepository(session).blocked_between(a, b):
        raise MemberBlocked()


async def _other(
    session: AsyncSession,
    me: CommunityMember,
    other_id: uuid.UUID,
    directory: MemberDirectory | None,
) -> CommunityMember:
    return await known_member(session, me.brand_id, other_id, directory)


async def follow(
    session: AsyncSession,
    me: CommunityMember,
    other_id: uuid.UUID,
    directory: MemberDirectory | None = None,
) -> bool:
    """Follows `other_id`; True if this is a new follow."""
    if other_id == me.member_id:
        raise CannotFollowYourself()
    other = await _other(session, me, other_id, directory)
    await ensure_not_blocked(session, me.member_id, other.member_id)
    # The application's clock dates the row and its event alike (history loads date both).
    at = utcnow()
    created = await SocialRepository(session).add(Follow, me.brand_id, me.member_id, other_id, at)
    if created:
        await OUTBOX.add(
            session, follow_event(MemberFollowed, me.brand_id, me.member_id, other_id, at)
        )
    return created


async def unfollow(
    session: AsyncSession,
    me: CommunityMember,
    other_id: uuid.UUID,
    directory: MemberDirectory | None = None,
) -> None:
    other = await _other(session, me, other_id, directory)
    if await SocialRepository(session).remove(Follow, me.member_id, other.member_id):
        await OUTBOX.add(
            session,
            follow_event(MemberUnfollowed, me.brand_id, me.member_id, other_id, utcnow()),
        )


async def block(
    session: AsyncSession,
    me: CommunityMember,
    other_id: uuid.UUID,
    directory: MemberDirectory | None = None,
) -> bool:
    """Blocks `other_id` and ends the follows between the two; True if newly blocked."""
    if other_id == me.member_id:
        raise CannotBlockYourself()
    other = await _other(session, me, other_id, directory)
    repository = SocialRepository(session)
    at = utcnow()
    created = await repository.add(Block, me.brand_id, me.member_id, other.member_id, at)
    for follower, followee in await repository.unfollow_both_ways(me.member_id, other_id):
        await OUTBOX.add(
            session, follow_event(MemberUnfollowed, me.brand_id, follower, followee, at)
        )
    return created


async def unblock(
    session: AsyncSession,
    me: CommunityMember,
    other_id: uuid.UUID,
    directory: MemberDirectory | None = None,
) -> None:
    other = await _other(session, me, other_id, directory)
    await SocialRepository(session).remove(Block, me.member_id, other.member_id)


async def mute(
    session: AsyncSession,
    me: CommunityMember,
    other_id: uuid.UUID,
    directory: MemberDirectory | None = None,
) -> bool:
    if other_id == me.member_id:
        raise CannotMuteYourself()
    other = await _other(session, me, other_id, directory)
    return await SocialRepository(session).add(
        Mute, me.brand_id, me.member_id, other.member_id, utcnow()
    )


async def unmute(
    session: AsyncSession,
    me: CommunityMember,
    other_id: uuid.UUID,
    directory: MemberDirectory | None = None,
) -> None:
    other = await _other(session, me, other_id, directory)
    await SocialRepository(session).remove(Mute, me.member_id, other.member_id)


async def related(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    relation: Relation,
    page: PageRequest,
    *,
    reverse: bool = False,
) -> Sequence[tuple[uuid.UUID, uuid.UUID, str | None, Any]]:
    """One page of a member's follows, followers (`reverse`), blocks or mutes, newest first."""
    return await SocialRepository(session).page(
        relation, brand_id, member_id, page, reverse=reverse
    )


async def visible_member(
    session: AsyncSession,
    me: CommunityMember,
    member_id: uuid.UUID,
    directory: MemberDirectory | None = None,
) -> CommunityMember:
    """Another member whose lists `me` may read: of the same brand (404 otherwise)."""
    return await known_member(session, me.brand_id, member_id, directory)


def follow_event(
    cls: type[MemberFollowed] | type[MemberUnfollowed],
    brand_id: uuid.UUID,
    follower_id: uuid.UUID,
    followee_id: uuid.UUID,
    at: datetime,
) -> MemberFollowed | MemberUnfollowed:
    """`member.followed` / `member.unfollowed` at `at`: online and from the bulk history path."""
    return cls(
        brand_id=brand_id,
        subject_id=follower_id,
        data=FollowData(follower_id=follower_id, followee_id=followee_id),
        occurred_at=at,
    )
