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

import enum
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.abilities import Ability, abilities_at
from services.community.members.service import known_member
from services.community.models import CommunityMember
from services.community.reputation import badges
from services.community.reputation.models import ReputationEvent, ReputationReason
from services.community.reputation.repository import (
    HistoryRow,
    ReputationRepository,
    StandingChange,
)
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


class Action(enum.Enum):
    GRANT = "grant"  # pay POINTS[reason] for `key`, unless the key contributes already
    REVOKE = "revoke"  # take back what `key` still contributes, if anything
    # everything a removed post or comment (`content_id`) earned its author: its approval and
    # the reactions it received
    TAKE_BACK = "take_back"


@dataclass(frozen=True, slots=True)
class Request:
    """One event's say on one member's reputation."""

    action: Action
    brand_id: uuid.UUID
    member_id: uuid.UUID
    content_id: uuid.UUID
    reason: ReputationReason
    source_event_id: uuid.UUID
    at: datetime
    key: str = ""  # the grant a GRANT or REVOKE is about


async def apply(session: AsyncSession, requests: Sequence[Request]) -> None:
    """Carries out `requests` in order, with the outcome of carrying them out one by one, in a
    few statements however many there are: the members are locked together (in id order, so
    consumers with overlapping batches cannot deadlock), the grants' nets read once, the history
    written in one insert. A request for a member the brand does not have changes nothing."""
    repository = ReputationRepository(session)
    members = await repository.lock_members({request.member_id for request in requests})
    requests = [
        r
        for r in requests
        if r.member_id in members and members[r.member_id].brand_id == r.brand_id
    ]
    nets: dict[tuple[uuid.UUID, str], int] = {}
    under: dict[tuple[uuid.UUID, uuid.UUID], set[str]] = defaultdict(set)
    found = await repository.nets(
        {(r.member_id, r.key) for r in requests if r.action is not Action.TAKE_BACK},
        {(r.member_id, r.content_id) for r in requests if r.action is Action.TAKE_BACK},
    )
    # A grant both named and under a removed content is read twice: count it once.
    for member_id, key, content_id, net in set(found):
        nets[member_id, key] = nets.get((member_id, key), 0) + net
        under[member_id, content_id].add(key)

    rows: list[HistoryRow] = []
    for request in requests:
        member_id = request.member_id
        if request.action is Action.GRANT:
            if nets.get((member_id, request.key), 0) != 0:
                continue
            changes = [(request.key, POINTS[request.reason], request.reason)]
        elif request.action is Action.REVOKE:
            net = nets.get((member_id, request.key), 0)
            if net == 0:
                continue
            changes = [(request.key, -net, request.reason)]
        else:
            changes = [
                (key, -net, ReputationReason.CONTENT_REMOVED)
                for key in sorted(under[member_id, request.content_id])
                if (net := nets.get((member_id, key), 0)) != 0
            ]
        for key, delta, reason in changes:
            nets[member_id, key] = nets.get((member_id, key), 0) + delta
            under[member_id, request.content_id].add(key)
            rows.append(
                HistoryRow(
                    brand_id=request.brand_id,
                    member_id=member_id,
                    key=key,
                    content_id=request.content_id,
                    delta=delta,
                    reason=reason,
                    source_event_id=request.source_event_id,
                    at=request.at,
                )
            )
    written = await repository.record(rows)
    await _follow(session, members, rows, written)


async def _follow(
    session: AsyncSession,
    members: dict[uuid.UUID, CommunityMember],
    rows: Sequence[HistoryRow],
    written: set[tuple[uuid.UUID, uuid.UUID, str]],
) -> None:
    """The members' reputation and trust level after the rows written, and the badges each
    event's rise reached."""
    reputations: dict[uuid.UUID, int] = {}
    rises: list[badges.Rise] = []
    for (source, member_id), event_rows in groupby(
        rows, key=lambda row: (row.source_event_id, row.member_id)
    ):
        taken = [row for row in event_rows if (source, member_id, row.key) in written]
        delta = sum(row.delta for row in taken)
        if delta == 0:
            continue
        reputation = reputations.get(member_id, members[member_id].reputation) + delta
        reputations[member_id] = reputation
        if delta > 0:
            rises.append(badges.Rise(taken[0].brand_id, member_id, reputation, taken[0].at))
    standings: list[StandingChange] = []
    for member_id, reputation in reputations.items():
        member = members[member_id]
        level = member.trust_level if member.trust_level_locked else level_for(reputation)
        standings.append(StandingChange(member, reputation, level, member.trust_level_locked))
    await ReputationRepository(session).set_standings(standings)
    if rises:
        await badges.award_for_reputation(session, rises)


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
    await ReputationRepository(session).set_standings(
        [StandingChange(member, member.reputation, level, locked=True)]
    )
    return Standing.of(member)


async def unlock_trust_level(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID
) -> Standing:
    """The level follows the reputation again, starting now."""
    member = await _locked_member(session, brand_id, member_id)
    level = level_for(member.reputation)
    await ReputationRepository(session).set_standings(
        [StandingChange(member, member.reputation, level, locked=False)]
    )
    return Standing.of(member)


async def _locked_member(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID
) -> CommunityMember:
    await known_member(session, brand_id, member_id)  # 404 for unknown, erased or foreign
    members = await ReputationRepository(session).lock_members([member_id])
    return members[member_id]  # known a moment ago, and members rows are never deleted
