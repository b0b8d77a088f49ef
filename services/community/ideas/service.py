"""The ideas board: members propose, vote and comment; the brand answers. Never commits.

**Proposing.** A member who may act (`CurrentMember`) proposes an idea with a title, a body and a
category; it starts `new`. The author's own vote is cast with it (as Canny and UserVoice do): an
idea starts with the support of the one person who wanted it, and the author hears of its answer
like any voter. So a member never votes for their own idea separately: a second vote by anyone,
the author included, is `AlreadyVoted`.

**Voting.** One up-vote per member and idea (a unique key), taken back with an unvote and cast
again later. Votes and unvotes lock the idea's row, so its `vote_count` is exact under races and an
answer lists exactly the voters counted. Launched and declined ideas are closed to voting
(`IdeaClosed`): the brand has answered for good; an unvote is still allowed.

**Comments** are flat, any member who may act can write one, on ideas of any status.

**Answers.** Staff set one of `under_review`, `planned`, `launched`, `declined` with an optional
public reply. A change of status emits `idea.status_changed` listing the voters to notify (see
`events.py` for why the list is bounded and how the rest is paged). Sending the current status
again only updates the reply: the voters already heard of that status.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.access import Actor
from services.community.ideas.errors import AlreadyVoted, IdeaClosed, IdeaNotFound, VoteNotFound
from services.community.ideas.events import (
    VOTER_IDS_LIMIT,
    IdeaCreated,
    IdeaData,
    IdeaStatusChanged,
    IdeaStatusChangedData,
    IdeaVoted,
    IdeaVotedData,
)
from services.community.ideas.models import Idea, IdeaComment, IdeaStatus, IdeaVote
from services.community.ideas.paging import BoardPage, BoardPosition, encode_position
from services.community.ideas.repository import BoardFilters, IdeaRepository
from services.community.ideas.schemas import (
    CommentCreate,
    CommentRead,
    IdeaCreate,
    IdeaRead,
    StatusUpdate,
)
from services.community.models import OUTBOX, CommunityMember
from services.kernel.auth import StaffPrincipal
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import Page, PageRequest, encode_cursor

CLOSED: frozenset[IdeaStatus] = frozenset({IdeaStatus.LAUNCHED, IdeaStatus.DECLINED})


def _data(idea: Idea) -> IdeaData:
    return IdeaData(
        idea_id=idea.id,
        author_id=idea.author_id,
        title=idea.title,
        category=idea.category,
        status=idea.status,
        vote_count=idea.vote_count,
    )


async def _idea(
    ideas: IdeaRepository, brand_id: uuid.UUID, idea_id: uuid.UUID, *, for_update: bool = False
) -> Idea:
    idea = await ideas.get(brand_id, idea_id, for_update=for_update)
    if idea is None:
        raise IdeaNotFound(f"No idea {idea_id} in this brand.")
    return idea


async def _read(ideas: IdeaRepository, idea: Idea, viewer: Actor) -> IdeaRead:
    voted = None
    if viewer.member_id is not None:
        voted = idea.id in await ideas.voted(viewer.member_id, [idea.id])
    return IdeaRead.of(idea, await ideas.display_name(idea.author_id), voted)


# --- Proposing and reading ----------------------------------------------------------------------


async def propose(
    session: AsyncSession,
    member: CommunityMember,
    payload: IdeaCreate,
    now: datetime | None = None,
) -> IdeaRead:
    now = now or utcnow()
    ideas = IdeaRepository(session)
    idea = Idea(
        id=new_id(),
        brand_id=member.brand_id,
        author_id=member.member_id,
        title=payload.title,
        body=payload.body,
        category=payload.category,
        status=IdeaStatus.NEW,
        vote_count=1,  # the author's own vote, written just below
        comment_count=0,
        created_at=now,
    )
    await ideas.add(idea)
    await ideas.add_vote(
        IdeaVote(
            id=new_id(),
            brand_id=idea.brand_id,
            idea_id=idea.id,
            member_id=member.member_id,
            created_at=now,
        )
    )
    await OUTBOX.add(
        session,
        IdeaCreated(
            brand_id=idea.brand_id, subject_id=idea.author_id, occurred_at=now, data=_data(idea)
        ),
    )
    return IdeaRead.of(idea, member.display_name, voted=True)


async def get_idea(session: AsyncSession, viewer: Actor, idea_id: uuid.UUID) -> IdeaRead:
    ideas = IdeaRepository(session)
    return await _read(ideas, await _idea(ideas, viewer.brand_id, idea_id), viewer)


async def board(
    session: AsyncSession, viewer: Actor, filters: BoardFilters, page: BoardPage
) -> Page[IdeaRead]:
    """One page of the board, in the order asked, with the viewer's own votes marked."""
    ideas = IdeaRepository(session)
    rows = await ideas.board(viewer.brand_id, filters, page)
    shown = rows[: page.limit]
    voted: set[uuid.UUID] = set()
    if viewer.member_id is not None:
        voted = await ideas.voted(viewer.member_id, [idea.id for idea, _ in shown])
    items = [
        IdeaRead.of(idea, name, None if viewer.is_staff else idea.id in voted)
        for idea, name in shown
    ]
    following = None
    if len(rows) > page.limit:
        last = shown[-1][0]
        following = encode_position(BoardPosition(last.vote_count, last.id))
    return Page[IdeaRead](items=items, next=following)


# --- Votes --------------------------------------------------------------------------------------


async def vote(
    session: AsyncSession,
    member: CommunityMember,
    idea_id: uuid.UUID,
    now: datetime | None = None,
) -> IdeaRead:
    now = now or utcnow()
    ideas = IdeaRepository(session)
    idea = await _idea(ideas, member.brand_id, idea_id, for_update=True)
    if idea.status in CLOSED:
        raise IdeaClosed(f"This idea is {idea.status.value}: voting on it is closed.")
    cast = await ideas.add_vote(
        IdeaVote(
            id=new_id(),
            brand_id=member.brand_id,
            idea_id=idea.id,
            member_id=member.member_id,
            created_at=now,
        )
    )
    if not cast:
        raise AlreadyVoted("You have already voted for this idea; one vote per member.")
    await ideas.count_vote(idea, +1)
    await OUTBOX.add(
        session,
        IdeaVoted(
            brand_id=idea.brand_id,
            subject_id=member.member_id,
            occurred_at=now,
            data=IdeaVotedData(
                idea_id=idea.id,
                author_id=idea.author_id,
                member_id=member.member_id,
                vote_count=idea.vote_count,
            ),
        ),
    )
    return IdeaRead.of(idea, await ideas.display_name(idea.author_id), voted=True)


async def unvote(session: AsyncSession, member: CommunityMember, idea_id: uuid.UUID) -> IdeaRead:
    ideas = IdeaRepository(session)
    idea = await _idea(ideas, member.brand_id, idea_id, for_update=True)
    if not await ideas.remove_vote(idea.id, member.member_id):
        raise VoteNotFound("You have not voted for this idea.")
    await ideas.count_vote(idea, -1)
    return IdeaRead.of(idea, await ideas.display_name(idea.author_id), voted=False)


async def voters(
    session: AsyncSession, brand_id: uuid.UUID, idea_id: uuid.UUID, page: PageRequest
) -> Sequence[IdeaVote]:
    ideas = IdeaRepository(session)
    idea = await _idea(ideas, brand_id, idea_id)
    return await ideas.voters(idea.id, page)


# --- Comments -----------------------------------------------------------------------------------


async def comment(
    session: AsyncSession,
    member: CommunityMember,
    idea_id: uuid.UUID,
    payload: CommentCreate,
    now: datetime | None = None,
) -> CommentRead:
    ideas = IdeaRepository(session)
    idea = await _idea(ideas, member.brand_id, idea_id, for_update=True)
    row = IdeaComment(
        id=new_id(),
        brand_id=member.brand_id,
        idea_id=idea.id,
        author_id=member.member_id,
        body=payload.body,
        created_at=now or utcnow(),
    )
    await ideas.add_comment(idea, row)
    return CommentRead.of(row, member.display_name)


async def comments(
    session: AsyncSession, brand_id: uuid.UUID, idea_id: uuid.UUID, page: PageRequest
) -> Page[CommentRead]:
    ideas = IdeaRepository(session)
    idea = await _idea(ideas, brand_id, idea_id)
    rows = await ideas.comments(idea.id, page)
    return Page[CommentRead].of(
        rows, page, key=lambda row: row[0].id, item=lambda row: CommentRead.of(row[0], row[1])
    )


# --- The brand's answer -------------------------------------------------------------------------


async def answer(
    session: AsyncSession,
    staff: StaffPrincipal,
    idea_id: uuid.UUID,
    payload: StatusUpdate,
    now: datetime | None = None,
) -> IdeaRead:
    now = now or utcnow()
    ideas = IdeaRepository(session)
    idea = await _idea(ideas, staff.brand_id, idea_id, for_update=True)
    if payload.reply is not None:
        idea.reply = payload.reply
    status = IdeaStatus(payload.status.value)
    if status != idea.status:
        previous = idea.status
        idea.status = status
        idea.status_changed_at = now
        await _tell_voters(session, ideas, idea, previous, now)
    await session.flush()
    return await _read(ideas, idea, Actor(brand_id=staff.brand_id, staff=staff))


async def _tell_voters(
    session: AsyncSession,
    ideas: IdeaRepository,
    idea: Idea,
    previous: IdeaStatus,
    now: datetime,
) -> None:
    """`idea.status_changed` with the first `VOTER_IDS_LIMIT` voters and, past them, the cursor
    to page the others. The idea row is locked, so no vote lands between count and list."""
    first = await ideas.voters(idea.id, PageRequest(limit=VOTER_IDS_LIMIT, after=None))
    listed = first[:VOTER_IDS_LIMIT]
    more = len(first) > VOTER_IDS_LIMIT
    await OUTBOX.add(
        session,
        IdeaStatusChanged(
            brand_id=idea.brand_id,
            subject_id=idea.author_id,
            occurred_at=now,
            data=IdeaStatusChangedData(
                idea_id=idea.id,
                author_id=idea.author_id,
                title=idea.title,
                from_status=previous,
                to_status=idea.status,
                reply=idea.reply,
                voter_count=idea.vote_count,
                voter_ids=[v.member_id for v in listed],
                voters_next=encode_cursor(listed[-1].id) if more else None,
            ),
        ),
    )
