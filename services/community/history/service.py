"""Bulk loading of community history: what the online path would have left, written with COPY.

**What a load stands for.** Each item is replayed as if its member had done it through the API
with the clock at its `created_at`, in time order (at one instant: posts, comments, reactions,
follows, each in the order given):

- a post (`posts.service.create_post`; kind `post`, no group, media or prompt): body and tags
  validated and normalised by the API's own `PostCreate`; the author known and free to act then
  (404 `MemberNotFound`, 403 `MemberSuspended`) and trusted with links if it has any (403
  `TrustLevelTooLow`); the automatic first pass (`moderation.screening.verdict`) with the brand's
  rules as they are now and the copies of its body counted as of that moment (rows already
  written in the window before it, and the batch's earlier posts and comments): published at
  once, or held as online; `post.created`, and `post.approved` when published;
- a comment (`create_comment`, not a reply): on a post of the batch (named by its key) or of the
  brand (by its id) that the member may see and that is not removed (404 `PostNotFound`, 409
  `PostRemoved`), neither of the two blocking the other (403 `MemberBlocked`), a member of the
  post's group if it has one; screened like a post; counted in the post's `comment_count` when
  published; `comment.created`;
- a reaction to a post (`reactions.react`): the rules of a comment, a `ReactionKind`; counted in
  the post's `reaction_count`; `reaction.added`;
- a follow (`social.service.follow`): the follower free to act, not following themselves (422
  `CannotFollowYourself`), the other known (404), neither blocking the other; `member.followed`.

The events are the online path's own builders' (`written_post_events`, `comment_created`,
`reaction_event`, `follow_event`), dated at the items' moments, with ids of those moments (UUIDv7;
at one moment, in the replay's order): the relay publishes by id, so batches loaded in any order,
or side by side, reach the consumers (reputation, milestones, challenges, rewards' activity
points) in time order when they drain.

**Refused, writing nothing.** Besides the online path's errors above: invalid text, tags, kinds
or a naive time (422 `ValidationFailed`), content after `now` (`ContentInFuture`), a response
dated before its post (`ContentOutOfOrder`), and what the API would take as a no-op: a reaction
or follow given twice, in the batch or already in the brand, or a post key used twice
(`ContentRepeated`; history has each once). Everything is checked before anything is written;
the error names the item: `{"item": "comments[3]", "detail": ...}`.

**Ids.** Every row's id is a UUIDv7 of its `created_at` (`kernel.ids.id_at`), so feeds and
threads, which order by id, show history in time order among live content. A post's id also
derives from its key and brand (`historic_post_id`), so a post loaded before is recognised
(`posts_loaded`, and `ContentRepeated` on a second load).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import pydantic
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.errors import MemberNotFound, MemberSuspended
from services.community.groups.membership import require_active_membership
from services.community.history.errors import ContentInFuture, ContentOutOfOrder, ContentRepeated
from services.community.history.repository import ContentHistoryRepository, PostTarget
from services.community.history.schemas import (
    ContentReport,
    HistoricComment,
    HistoricContent,
    HistoricFollow,
    HistoricPost,
    HistoricReaction,
    PostRef,
)
from services.community.members.abilities import Ability
from services.community.members.service import is_suspended, require_ability
from services.community.models import OUTBOX, CommunityMember, ContentStatus, PostKind
from services.community.moderation.repository import Copy
from services.community.moderation.screening import (
    HistoricCopies,
    ScreeningRules,
    duplicate_window,
    historic_copies,
    may_be_duplicate,
    screening_rules,
    too_many_copies,
    verdict,
)
from services.community.posts.errors import PostNotFound, PostRemoved
from services.community.posts.events import ReactionAdded, ReactionKind
from services.community.posts.reactions import reaction_event
from services.community.posts.schemas import CommentCreate, PostCreate
from services.community.posts.service import comment_created, written_post_events
from services.community.posts.text import body_hash, has_link
from services.community.social.errors import CannotFollowYourself, MemberBlocked
from services.community.social.events import MemberFollowed
from services.community.social.service import follow_event
from services.kernel.clock import utcnow
from services.kernel.errors import KinfolkError, ValidationFailed
from services.kernel.events import Event
from services.kernel.ids import id_at

_ERASED = "erased"
# The order of kinds of items at one instant.
_POST, _COMMENT, _REACTION, _FOLLOW = range(4)
_KIND_NAMES = ("posts", "comments", "reactions", "follows")

_Model = TypeVar("_Model", bound=pydantic.BaseModel)


def historic_post_id(brand_id: uuid.UUID, key: str, created_at: datetime) -> uuid.UUID:
    """The id of the brand's post `key`, written at `created_at` (aware)."""
    digest = hashlib.sha256(brand_id.bytes + key.encode()).digest()
    return id_at(created_at.astimezone(UTC), digest)


# --- Rows as they will be written (they carry what the event builders read) ------------------


@dataclass(slots=True)
class _PostRow:
    id: uuid.UUID
    brand_id: uuid.UUID
    author_id: uuid.UUID
    body: str
    tags: list[str]
    status: ContentStatus
    held_reasons: list[str]
    body_hash: str
    created_at: datetime
    comment_count: int = 0
    reaction_count: int = 0
    kind: PostKind = PostKind.POST
    group_id: uuid.UUID | None = None
    prompt_id: uuid.UUID | None = None
    review_sku: str | None = None
    rating: int | None = None
    skus: list[str] = field(default_factory=list)
    incentivised: bool = False

    def record(self) -> tuple[object, ...]:  # repository.POST_COLUMNS
        at = self.created_at
        published = self.status == ContentStatus.PUBLISHED
        return (
            self.id,
            self.brand_id,
            self.author_id,
            self.kind.value,
            self.body,
            self.tags,
            self.status.value,
            self.held_reasons,
            self.body_hash,
            self.comment_count,
            self.reaction_count,
            at,
            at if published else None,
            at,
        )


@dataclass(frozen=True, slots=True)
class _CommentRow:
    id: uuid.UUID
    brand_id: uuid.UUID
    post_id: uuid.UUID
    author_id: uuid.UUID
    body: str
    status: ContentStatus
    held_reasons: list[str]
    body_hash: str
    created_at: datetime
    parent_id: uuid.UUID | None = None

    def record(self) -> tuple[object, ...]:  # repository.COMMENT_COLUMNS
        published = self.status == ContentStatus.PUBLISHED
        return (
            self.id,
            self.brand_id,
            self.post_id,
            self.author_id,
            self.body,
            self.status.value,
            self.held_reasons,
            self.body_hash,
            self.created_at,
            self.created_at if published else None,
        )


# --- Checks that need no database ------------------------------------------------------------


def _refusal(kind: int, index: int, error: KinfolkError) -> KinfolkError:
    """The online path's error, naming the item of the batch it refuses."""
    return type(error)({"item": f"{_KIND_NAMES[kind]}[{index}]", "detail": error.detail})


def _invalid(kind: int, index: int, field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        [{"loc": [_KIND_NAMES[kind], index, field_name], "msg": message, "type": "value_error"}]
    )


def _moment(kind: int, index: int, value: datetime, now: datetime) -> datetime:
    if value.tzinfo is None:
        raise _invalid(kind, index, "created_at", "must be timezone-aware")
    at = value.astimezone(UTC)
    if at > now:
        raise _refusal(
            kind,
            index,
            ContentInFuture(
                f"Dated {at.isoformat()}, after now ({now.isoformat()}): history holds what "
                "has happened."
            ),
        )
    return at


def _validated(model: type[_Model], kind: int, index: int, values: dict[str, object]) -> _Model:
    """`values` through the API's own input model (trimmed, normalised, bounded)."""
    try:
        return model.model_validate(values)
    except pydantic.ValidationError as error:
        raise ValidationFailed(
            [
                {
                    "loc": [_KIND_NAMES[kind], index, *error_["loc"]],
                    "msg": error_["msg"],
                    "type": error_["type"],
                }
                for error_ in error.errors()
            ]
        ) from error


@dataclass(frozen=True, slots=True)
class _Item:
    """One happening of the batch, for the timeline."""

    at: datetime
    kind: int
    index: int


@dataclass(slots=True)
class _Checked:
    posts: list[tuple[HistoricPost, PostCreate, datetime]] = field(default_factory=list)
    comments: list[tuple[HistoricComment, CommentCreate, datetime]] = field(default_factory=list)
    reactions: list[tuple[HistoricReaction, ReactionKind, datetime]] = field(default_factory=list)
    follows: list[tuple[HistoricFollow, datetime]] = field(default_factory=list)
    timeline: list[_Item] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.timeline


def _checked(content: HistoricContent, now: datetime) -> _Checked:
    """Validates each item alone, and what repeats within the batch."""
    out = _Checked()
    keys: set[str] = set()
    for index, post in enumerate(content.posts):
        at = _moment(_POST, index, post.created_at, now)
        payload = _validated(
            PostCreate, _POST, index, {"kind": post.kind, "body": post.body, "tags": post.tags}
        )
        if payload.kind != PostKind.POST:
            raise _invalid(_POST, index, "kind", "only posts of kind 'post' load in bulk")
        if post.key in keys:
            raise _refusal(_POST, index, ContentRepeated(f"The key {post.key!r} names two posts."))
        keys.add(post.key)
        out.posts.append((post, payload, at))
        out.timeline.append(_Item(at, _POST, index))
    for index, comment in enumerate(content.comments):
        at = _moment(_COMMENT, index, comment.created_at, now)
        body = _validated(CommentCreate, _COMMENT, index, {"body": comment.body})
        out.comments.append((comment, body, at))
        out.timeline.append(_Item(at, _COMMENT, index))
    given: set[tuple[uuid.UUID, PostRef, ReactionKind]] = set()
    for index, reaction in enumerate(content.reactions):
        at = _moment(_REACTION, index, reaction.created_at, now)
        try:
            kind = ReactionKind(reaction.kind)
        except ValueError:
            kinds = ", ".join(k.value for k in ReactionKind)
            raise _invalid(_REACTION, index, "kind", f"must be one of {kinds}") from None
        triple = (reaction.member_id, reaction.post, kind)
        if triple in given:
            raise _refusal(
                _REACTION, index, ContentRepeated("The member gives this reaction twice.")
            )
        given.add(triple)
        out.reactions.append((reaction, kind, at))
        out.timeline.append(_Item(at, _REACTION, index))
    pairs: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for index, follow in enumerate(content.follows):
        at = _moment(_FOLLOW, index, follow.created_at, now)
        if follow.follower_id == follow.followee_id:
            raise _refusal(_FOLLOW, index, CannotFollowYourself())
        pair = (follow.follower_id, follow.followee_id)
        if pair in pairs:
            raise _refusal(_FOLLOW, index, ContentRepeated("The member follows them twice."))
        pairs.add(pair)
        out.follows.append((follow, at))
        out.timeline.append(_Item(at, _FOLLOW, index))
    out.timeline.sort(key=lambda item: (item.at, item.kind, item.index))
    return out


# --- What the batch needs to know from the database ------------------------------------------


@dataclass(slots=True)
class _State:
    """What the database says about the batch, read once before the replay."""

    members: dict[uuid.UUID, CommunityMember]
    targets: dict[uuid.UUID, PostTarget]
    blocks: set[tuple[uuid.UUID, uuid.UUID]]
    reactions_given: set[tuple[uuid.UUID, uuid.UUID, str]]
    follows: set[tuple[uuid.UUID, uuid.UUID]]
    rules: ScreeningRules
    copies: HistoricCopies

    def blocked(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        return a != b and ((a, b) in self.blocks or (b, a) in self.blocks)


async def _state(
    repository: ContentHistoryRepository,
    session: AsyncSession,
    brand_id: uuid.UUID,
    checked: _Checked,
) -> _State:
    actors = {p.author_id for p, _, _ in checked.posts}
    actors |= {c.author_id for c, _, _ in checked.comments}
    actors |= {r.member_id for r, _, _ in checked.reactions}
    actors |= {f.follower_id for f, _ in checked.follows}
    followees = {f.followee_id for f, _ in checked.follows}
    members = await repository.members(brand_id, actors | followees)
    refs = [c.post for c, _, _ in checked.comments] + [r.post for r, _, _ in checked.reactions]
    targets = await repository.lock_posts(brand_id, {r for r in refs if isinstance(r, uuid.UUID)})
    authors = {t.author_id for t in targets.values()}
    blocks = await repository.blocks_among(actors | followees | authors)
    reactions_given = await repository.reactions_given(
        {(r.member_id, r.post) for r, _, _ in checked.reactions if isinstance(r.post, uuid.UUID)}
    )
    follows = await repository.follows_among(
        {(f.follower_id, f.followee_id) for f, _ in checked.follows}
    )
    rules = await screening_rules(session, brand_id)
    texts = [p.body for _, p, _ in checked.posts] + [c.body for _, c, _ in checked.comments]
    times = [at for _, _, at in checked.posts] + [at for _, _, at in checked.comments]
    candidates = {body_hash(text) for text in texts if may_be_duplicate(rules.settings, text)}
    copies = (
        await historic_copies(session, brand_id, rules.settings, candidates, min(times), max(times))
        if times
        else HistoricCopies([])
    )
    return _State(members, targets, blocks, reactions_given, follows, rules, copies)


# --- The replay --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Target:
    """A post the batch responds to: one of its own, or one already in the brand."""

    id: uuid.UUID
    author_id: uuid.UUID
    status: ContentStatus
    group_id: uuid.UUID | None
    created_at: datetime
    row: _PostRow | None  # the batch's own post (its counters are in the row)


@dataclass(slots=True)
class _Out:
    posts: list[_PostRow] = field(default_factory=list)
    comments: list[_CommentRow] = field(default_factory=list)
    reactions: list[tuple[object, ...]] = field(default_factory=list)
    follows: list[tuple[object, ...]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # (comments, reactions) to add to posts already in the brand.
    counts: dict[uuid.UUID, list[int]] = field(default_factory=dict)
    held: int = 0


class _Replay:
    def __init__(
        self,
        session: AsyncSession,
        brand_id: uuid.UUID,
        checked: _Checked,
        state: _State,
        taken: set[uuid.UUID],
    ) -> None:
        self.session = session
        self.brand_id = brand_id
        self.checked = checked
        self.state = state
        self.taken = taken
        self.out = _Out()
        self.by_key: dict[str, _Target] = {}  # the batch's posts replayed so far
        self.keys = {post.key for post, _, _ in checked.posts}
        self.window = duplicate_window(state.rules.settings)
        self.memberships: set[tuple[uuid.UUID, uuid.UUID]] = set()  # (group, member) checked

    async def run(self) -> _Out:
        for item in self.checked.timeline:
            try:
                if item.kind == _POST:
                    self._post(*self.checked.posts[item.index])
                elif item.kind == _COMMENT:
                    await self._comment(*self.checked.comments[item.index])
                elif item.kind == _REACTION:
                    await self._reaction(*self.checked.reactions[item.index])
                else:
                    self._follow(*self.checked.follows[item.index])
            except KinfolkError as error:
                raise _refusal(item.kind, item.index, error) from error
        return self.out

    # --- who may act ---

    def _known(self, member_id: uuid.UUID) -> CommunityMember:
        member = self.state.members.get(member_id)
        if member is None or member.member_status == _ERASED:
            raise MemberNotFound(f"No member {member_id} in this brand's community.")
        return member

    def _free(self, member_id: uuid.UUID, at: datetime) -> CommunityMember:
        member = self._known(member_id)
        if is_suspended(member, at):
            raise MemberSuspended()
        return member

    # --- the first pass ---

    def _screen(
        self, author: CommunityMember, text: str, at: datetime
    ) -> tuple[ContentStatus, list[str], str]:
        if has_link(text):
            require_ability(author, Ability.POST_LINKS)
        digest = body_hash(text)
        settings = self.state.rules.settings
        copies = self.state.copies
        duplicate = may_be_duplicate(settings, text) and too_many_copies(
            settings, copies.count(digest, author.member_id, at - self.window, at)
        )
        screening = verdict(self.state.rules, author, text, duplicate)
        copies.add(Copy(digest, author.member_id, at))
        if screening.status != ContentStatus.PUBLISHED:
            self.out.held += 1
        return screening.status, list(screening.reasons), digest

    # --- posts ---

    def _post(self, post: HistoricPost, payload: PostCreate, at: datetime) -> None:
        author = self._free(post.author_id, at)
        post_id = historic_post_id(self.brand_id, post.key, at)
        if post_id in self.taken:
            raise ContentRepeated(f"The post {post.key!r} is loaded already.")
        status, reasons, digest = self._screen(author, payload.body, at)
        row = _PostRow(
            id=post_id,
            brand_id=self.brand_id,
            author_id=author.member_id,
            body=payload.body,
            tags=payload.tags,
            status=status,
            held_reasons=reasons,
            body_hash=digest,
            created_at=at,
        )
        self.out.posts.append(row)
        self.out.events.extend(written_post_events(row))
        self.by_key[post.key] = _Target(row.id, row.author_id, status, None, at, row)

    # --- responses ---

    async def _target(self, ref: PostRef, member_id: uuid.UUID, at: datetime) -> _Target:
        """The post `member_id` responds to at `at`, as `posts.service.interactive_post`
        finds it: visible to them, not removed, its author not blocked either way, and in a
        group they are an active member of."""
        if isinstance(ref, uuid.UUID):
            found = self.state.targets.get(ref)
            target = (
                _Target(
                    found.id, found.author_id, found.status, found.group_id, found.created_at, None
                )
                if found is not None
                else None
            )
        else:
            target = self.by_key.get(ref)
            if target is None and ref in self.keys:
                raise ContentOutOfOrder(f"The post {ref!r} is dated after this response.")
        if target is None or (
            target.status == ContentStatus.HELD and target.author_id != member_id
        ):
            raise PostNotFound(f"No post {ref} in this batch or brand that the member can see.")
        if target.status == ContentStatus.REMOVED:
            raise PostRemoved()
        if at < target.created_at:
            raise ContentOutOfOrder(
                f"Dated {at.isoformat()}, before its post ({target.created_at.isoformat()})."
            )
        if self.state.blocked(member_id, target.author_id):
            raise MemberBlocked()
        if target.group_id is not None and (target.group_id, member_id) not in self.memberships:
            await require_active_membership(self.session, self.brand_id, target.group_id, member_id)
            self.memberships.add((target.group_id, member_id))
        return target

    def _count(self, target: _Target, comments: int = 0, reactions: int = 0) -> None:
        if target.row is not None:
            target.row.comment_count += comments
            target.row.reaction_count += reactions
            return
        counts = self.out.counts.setdefault(target.id, [0, 0])
        counts[0] += comments
        counts[1] += reactions

    async def _comment(
        self, comment: HistoricComment, payload: CommentCreate, at: datetime
    ) -> None:
        author = self._free(comment.author_id, at)
        target = await self._target(comment.post, author.member_id, at)
        status, reasons, digest = self._screen(author, payload.body, at)
        row = _CommentRow(
            id=id_at(at),
            brand_id=self.brand_id,
            post_id=target.id,
            author_id=author.member_id,
            body=payload.body,
            status=status,
            held_reasons=reasons,
            body_hash=digest,
            created_at=at,
        )
        if status == ContentStatus.PUBLISHED:
            self._count(target, comments=1)
        self.out.comments.append(row)
        self.out.events.append(comment_created(row, target.author_id))

    async def _reaction(self, reaction: HistoricReaction, kind: ReactionKind, at: datetime) -> None:
        member = self._free(reaction.member_id, at)
        target = await self._target(reaction.post, member.member_id, at)
        if (member.member_id, target.id, kind.value) in self.state.reactions_given:
            raise ContentRepeated("The member gave this reaction to the post already.")
        self._count(target, reactions=1)
        self.out.reactions.append(
            (id_at(at), self.brand_id, member.member_id, target.id, target.id, kind.value, at)
        )
        self.out.events.append(
            reaction_event(
                ReactionAdded,
                brand_id=self.brand_id,
                member_id=member.member_id,
                kind=kind,
                post_id=target.id,
                comment_id=None,
                target_author_id=target.author_id,
                at=at,
            )
        )

    # --- follows ---

    def _follow(self, follow: HistoricFollow, at: datetime) -> None:
        follower = self._free(follow.follower_id, at)
        followee = self._known(follow.followee_id)
        if self.state.blocked(follower.member_id, followee.member_id):
            raise MemberBlocked()
        if (follower.member_id, followee.member_id) in self.state.follows:
            raise ContentRepeated("The member follows them already.")
        self.out.follows.append(
            (id_at(at), self.brand_id, follower.member_id, followee.member_id, at)
        )
        self.out.events.append(
            follow_event(MemberFollowed, self.brand_id, follower.member_id, followee.member_id, at)
        )


def _dated_ids(events: list[Event]) -> list[Event]:
    """The events with ids of their own moments, in the batch's order at one moment (a counter
    leads the id's random bits). The relay publishes by id, so history reaches the consumers in
    time order across batches, however they interleave or whichever commits first, and before
    the live events written meanwhile (a milestone of a member's first post is that post's)."""
    noise = os.urandom(4 * len(events))  # one system call for the batch, not one an event
    return [
        event.model_copy(
            update={
                "id": id_at(
                    event.occurred_at,
                    (n << 30 | int.from_bytes(noise[4 * n : 4 * n + 4], "big") >> 2).to_bytes(
                        8, "big"
                    ),
                )
            }
        )
        for n, event in enumerate(events)
    ]


# --- The load ----------------------------------------------------------------------------------


async def posts_loaded(
    session: AsyncSession, brand_id: uuid.UUID, posts: Sequence[HistoricPost]
) -> set[str]:
    """The keys of these posts that the brand has already (a resumed load skips them)."""
    ids = {historic_post_id(brand_id, post.key, post.created_at): post.key for post in posts}
    found = await ContentHistoryRepository(session).existing_posts(brand_id, ids)
    return {ids[post_id] for post_id in found}


async def load_posts(
    session: AsyncSession,
    brand_id: uuid.UUID,
    content: HistoricContent,
    *,
    now: datetime | None = None,
) -> ContentReport:
    """Loads posts, comments, reactions and follows as the online path would have left them
    had each happened at its `created_at` (up to `now`, default the clock). Never commits."""
    moment = (now or utcnow()).astimezone(UTC)
    checked = _checked(content, moment)
    if checked.empty:
        return ContentReport(posts=0, comments=0, reactions=0, follows=0, events=0)
    repository = ContentHistoryRepository(session)
    state = await _state(repository, session, brand_id, checked)
    taken = await repository.existing_posts(
        brand_id, [historic_post_id(brand_id, p.key, at) for p, _, at in checked.posts]
    )
    out = await _Replay(session, brand_id, checked, state, taken).run()

    await repository.write(
        posts=[row.record() for row in out.posts],
        comments=[row.record() for row in out.comments],
        reactions=out.reactions,
        follows=out.follows,
    )
    await repository.add_to_counts({k: (v[0], v[1]) for k, v in out.counts.items()})
    events = await OUTBOX.copy_many(session, _dated_ids(out.events))
    return ContentReport(
        posts=len(out.posts),
        comments=len(out.comments),
        reactions=len(out.reactions),
        follows=len(out.follows),
        events=events,
        held=out.held,
    )
