"""Segments' rules: checking a rule against the brand's other segments and the caller's key,
previews, materialised versions with their entered/exited events, and the schedule.

Nothing here commits: the request or the job does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import Scope, StaffPrincipal
from services.kernel.clock import utcnow
from services.kernel.db import release_connection
from services.kernel.errors import KinfolkError
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest
from services.marketing.events import SegmentChangeData, SegmentEntered, SegmentExited
from services.marketing.fields import unreadable
from services.marketing.models import (
    OUTBOX,
    MemberView,
    Segment,
    SegmentPurpose,
    SegmentVersion,
)
from services.marketing.segments.affinity import AffinityFor, AffinitySource
from services.marketing.segments.compiler import Audience, Compiler, Named
from services.marketing.segments.errors import (
    AffinityNotAllowed,
    AffinityUnavailable,
    FieldNotReadable,
    RuleTooLarge,
    SegmentCycle,
    SegmentInUse,
    SegmentNotFound,
    UnknownSegment,
    VersionNotFound,
)
from services.marketing.segments.repository import SegmentRepository
from services.marketing.segments.rules import RULE_NODES, RuleNode, dump, facts, parse_rule
from services.marketing.segments.schemas import (
    MAX_CONDITIONS,
    SAMPLE_SIZE,
    SegmentCreate,
    SegmentUpdate,
)

log = structlog.get_logger(__name__)

# Events are written this many at a time: a segment of half a million members entering at
# once is a few hundred COPYs, never the whole list in memory.
EVENT_CHUNK = 5_000
# A version that moves this many stays re-analyses their table before anything reads it again:
# autovacuum would only after this transaction, and until then the planner sees the table as it
# was (a 20,000-member first version made the next statements take 7.4 s instead of 0.25 s).
ANALYZE_AFTER_CHANGES = 10_000
# How long one scheduled run keeps materialising due segments (the next run takes the rest).
REFRESH_BUDGET_SECONDS = 240.0
REFRESH_BATCH = 20

SAMPLE_COLUMNS = (
    MemberView.member_id,
    MemberView.tier,
    MemberView.locale,
    MemberView.joined_at,
    MemberView.last_active_at,
    MemberView.order_count,
    MemberView.spend_lifetime_minor,
    MemberView.points_available,
)


# --- Reading segments -------------------------------------------------------------------


async def get_segment(session: AsyncSession, brand_id: uuid.UUID, segment_id: uuid.UUID) -> Segment:
    """The brand's segment; deleted segments are not found."""
    found = await SegmentRepository(session).get(brand_id, segment_id)
    if found is None:
        raise SegmentNotFound(segment_id)
    return found


async def list_segments(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> Sequence[Segment]:
    return await SegmentRepository(session).page(brand_id, page)


# --- Checking rules ----------------------------------------------------------------------


@dataclass
class _Graph:
    """The brand's segments, their rules parsed on first use: what named segments resolve to."""

    segments: dict[uuid.UUID, Segment]
    overrides: dict[uuid.UUID, RuleNode] = field(default_factory=dict)
    _parsed: dict[uuid.UUID, RuleNode] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession, brand_id: uuid.UUID) -> _Graph:
        rows = await SegmentRepository(session).of_brand(brand_id)
        return cls({s.id: s for s in rows})

    def rule(self, segment_id: uuid.UUID) -> RuleNode:
        if segment_id in self.overrides:
            return self.overrides[segment_id]
        parsed = self._parsed.get(segment_id)
        if parsed is None:
            parsed = parse_rule(self.segments[segment_id].rule)
            self._parsed[segment_id] = parsed
        return parsed

    def uses(self, segment_id: uuid.UUID) -> list[uuid.UUID]:
        return [s for s, _ in facts(self.rule(segment_id)).segments if s in self.segments]

    def reaches(self, start: uuid.UUID, target: uuid.UUID) -> bool:
        """Whether `start`'s rule names `target`, directly or through other segments."""
        seen: set[uuid.UUID] = set()
        todo = [start]
        while todo:
            current = todo.pop()
            if current == target:
                return True
            if current in seen:
                continue
            seen.add(current)
            todo.extend(self.uses(current))
        return False

    def size(self, segment_id: uuid.UUID, memo: dict[uuid.UUID, int] | None = None) -> int:
        """Conditions of the segment's rule, those of the segments it names counted in."""
        memo = {} if memo is None else memo
        if segment_id not in memo:
            memo[segment_id] = MAX_CONDITIONS + 1  # a cycle (refused anyway) counts as too many
            found = facts(self.rule(segment_id))
            memo[segment_id] = found.conditions + sum(
                self.size(s, memo) for s, _ in found.segments if s in self.segments
            )
        return memo[segment_id]

    def dependents(self, segment_id: uuid.UUID) -> list[Segment]:
        """Segments that name this one, directly or not."""
        return [
            s
            for s in self.segments.values()
            if s.id != segment_id and any(self.reaches(u, segment_id) for u in self.uses(s.id))
        ]

    def named(self, rule: RuleNode) -> dict[uuid.UUID, Named]:
        """Every segment the rule names, directly or not, ready to compile inline."""
        out: dict[uuid.UUID, Named] = {}
        todo = [s for s, _ in facts(rule).segments]
        while todo:
            current = todo.pop()
            if current in out or current not in self.segments:
                continue
            out[current] = Named(self.rule(current), self.segments[current].purpose)
            todo.extend(s for s, _ in facts(out[current].rule).segments)
        return out


def _check_scopes(staff: StaffPrincipal, rule: RuleNode) -> None:
    found = facts(rule)
    for name, path in found.fields:
        if unreadable(staff, [name]):
            raise FieldNotReadable(
                f"{path}.field",
                f"{name} is personal data: testing it needs a key with members:read as well.",
            )
    if found.affinities and not staff.has(Scope.RECOMMENDER_READ):
        raise AffinityNotAllowed(
            found.affinities[0][1],
            "Affinity conditions read the recommender: the key needs recommender:read as well.",
        )


def _check_graph(
    graph: _Graph,
    rule: RuleNode,
    *,
    segment_id: uuid.UUID | None,
) -> list[uuid.UUID]:
    """Named segments exist, no cycle, and the size with named segments counted in; returns
    the segments the rule names."""
    found = facts(rule)
    for named, path in found.segments:
        if named not in graph.segments:
            raise UnknownSegment(f"{path}.segment", f"There is no segment {named} in this brand.")
        if segment_id is not None and graph.reaches(named, segment_id):
            raise SegmentCycle(
                f"{path}.segment",
                f"Segment {named} names this segment (directly or through others): "
                "segments may not name each other in a circle.",
            )
    if segment_id is not None:
        graph.overrides[segment_id] = rule
    total = found.conditions + sum(graph.size(s) for s, _ in found.segments)
    if total > MAX_CONDITIONS:
        raise RuleTooLarge(
            "rule",
            f"The rule has {total} conditions, counting those of the segments it names; at "
            f"most {MAX_CONDITIONS}: split it, or use in/not_in for lists of values.",
        )
    if segment_id is not None:
        for dependent in graph.dependents(segment_id):
            if graph.size(dependent.id) > MAX_CONDITIONS:
                raise RuleTooLarge(
                    "rule",
                    f"Segment {dependent.name!r} ({dependent.id}) names this one and would have "
                    f"more than {MAX_CONDITIONS} conditions with this rule.",
                )
    return list(dict.fromkeys(s for s, _ in found.segments))


# --- Writing segments -------------------------------------------------------------------


async def create_segment(
    session: AsyncSession, staff: StaffPrincipal, payload: SegmentCreate
) -> Segment:
    rule = parse_rule(payload.rule)
    _check_scopes(staff, rule)
    graph = await _Graph.load(session, staff.brand_id)
    uses = _check_graph(graph, rule, segment_id=None)
    now = utcnow()
    segment = Segment(
        id=new_id(),
        brand_id=staff.brand_id,
        name=payload.name,
        description=payload.description,
        rule=dump(rule),
        uses=uses,
        purpose=payload.purpose,
        refresh=payload.refresh,
        version=0,
        created_at=now,
        updated_at=now,
    )
    await SegmentRepository(session).add(segment)
    return segment


async def update_segment(
    session: AsyncSession, staff: StaffPrincipal, segment_id: uuid.UUID, payload: SegmentUpdate
) -> Segment:
    """Changes what was sent; the rule (new or not) is checked again against the brand's
    segments as they are now."""
    repository = SegmentRepository(session)
    segment = await get_segment(session, staff.brand_id, segment_id)
    segment = await repository.lock(segment)
    sent = payload.model_fields_set
    rule = parse_rule(payload.rule) if "rule" in sent and payload.rule is not None else None
    if rule is not None:
        _check_scopes(staff, rule)
    checked = rule if rule is not None else parse_rule(segment.rule)
    refresh = payload.refresh if "refresh" in sent and payload.refresh else segment.refresh
    graph = await _Graph.load(session, staff.brand_id)
    uses = _check_graph(graph, checked, segment_id=segment.id)
    if "name" in sent and payload.name is not None:
        segment.name = payload.name
    if "description" in sent:
        segment.description = payload.description
    if rule is not None:
        segment.rule = dump(rule)
    segment.uses = uses
    if "purpose" in sent and payload.purpose is not None:
        segment.purpose = payload.purpose
    segment.refresh = refresh
    segment.updated_at = utcnow()
    await session.flush()
    return segment


async def delete_segment(session: AsyncSession, brand_id: uuid.UUID, segment_id: uuid.UUID) -> None:
    """Soft: its versions stay for the exports made from them. Refused while another segment
    names it."""
    segment = await get_segment(session, brand_id, segment_id)
    segment = await SegmentRepository(session).lock(segment)
    graph = await _Graph.load(session, brand_id)
    users = [s for s in graph.segments.values() if segment.id in graph.uses(s.id)]
    if users:
        names = ", ".join(f"{s.name!r} ({s.id})" for s in users)
        raise SegmentInUse(f"Segments name this one in their rules: {names}. Change them first.")
    segment.deleted_at = utcnow()
    await session.flush()


# --- Compiling with named segments and affinities ---------------------------------------


@dataclass(frozen=True)
class Prepared:
    compiler: Compiler
    warnings: list[str]


async def _prepare(
    session: AsyncSession,
    brand_id: uuid.UUID,
    rule: RuleNode,
    *,
    affinity: AffinitySource | None,
    now: datetime,
    graph: _Graph | None = None,
) -> Prepared:
    """A compiler for the rule: the segments it names loaded, its affinity conditions (and
    theirs) answered by the recommender."""
    graph = graph or await _Graph.load(session, brand_id)
    named = graph.named(rule)
    asked: dict[tuple[str, float], str] = {}
    for source_rule, prefix in [(rule, "rule")] + [
        (n.rule, f"segment {segment_id}: rule") for segment_id, n in named.items()
    ]:
        for found, path in facts(source_rule, prefix).affinities:
            asked.setdefault((found.item, found.top_share), path)
    audiences: dict[tuple[str, float], Audience] = {}
    warnings: list[str] = []
    if asked and affinity is not None:
        # The recommender may be in this process, on the same pool (a materialisation holds its
        # segment locked, and so its connection, through the calls).
        await release_connection(session)
    for (item, share), path in asked.items():
        if affinity is None:
            raise AffinityUnavailable(
                f"{path}: an affinity condition is answered by the recommender, and nothing "
                "here can ask it; try again from the API or the scheduled refresh."
            )
        answer = await affinity.audience(item, share, path=path)
        audiences[(item, share)] = answer
        if answer.member_ids is None:
            note = f" ({answer.note})" if answer.note else ""
            warnings.append(
                f"{path}: the recommender has no model to rank members for {item} yet{note}; "
                "the condition matches nobody."
            )
    return Prepared(Compiler(brand_id, now, named, audiences), warnings)


# --- Previews ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[Mapping[str, Any]]
    warnings: list[str]


async def preview(
    session: AsyncSession,
    brand_id: uuid.UUID,
    rule: RuleNode | Mapping[str, Any] | object,
    *,
    purpose: SegmentPurpose = SegmentPurpose.ANALYTICS,
    staff: StaffPrincipal | None = None,
    affinity: AffinitySource | None = None,
    now: datetime | None = None,
    sample_size: int = SAMPLE_SIZE,
) -> Preview:
    """How many of the brand's members the rule holds for now (with `purpose`'s consent),
    and the first `sample_size` by member id. `rule` is the JSON as sent (checked as on save,
    without the schedule) or a checked rule; with `staff`, also what that key may read."""
    parsed = rule if isinstance(rule, RULE_NODES) else parse_rule(rule)
    if staff is not None:
        _check_scopes(staff, parsed)
    graph = await _Graph.load(session, brand_id)
    _check_graph(graph, parsed, segment_id=None)
    prepared = await _prepare(
        session, brand_id, parsed, affinity=affinity, now=now or utcnow(), graph=graph
    )
    return await _preview(session, prepared, parsed, purpose, sample_size)


async def preview_segment(
    session: AsyncSession,
    segment: Segment,
    *,
    affinity: AffinitySource | None = None,
    now: datetime | None = None,
) -> Preview:
    """A saved segment's membership if it were materialised now."""
    parsed = parse_rule(segment.rule)
    prepared = await _prepare(
        session, segment.brand_id, parsed, affinity=affinity, now=now or utcnow()
    )
    return await _preview(session, prepared, parsed, segment.purpose, SAMPLE_SIZE)


async def _preview(
    session: AsyncSession,
    prepared: Prepared,
    rule: RuleNode,
    purpose: SegmentPurpose,
    sample_size: int,
) -> Preview:
    repository = SegmentRepository(session)
    compiler = prepared.compiler
    live = compiler.members(rule, purpose=purpose)
    count, first = await repository.count_and_first(live, sample_size)
    rows = await repository.rows_of(compiler.brand_id, first, SAMPLE_COLUMNS)
    return Preview(count, [dict(row._mapping) for row in rows], prepared.warnings)


# --- Materialising -------------------------------------------------------------------------


async def live_members(
    session: AsyncSession,
    segment: Segment,
    *,
    consent: bool,
    affinity: AffinitySource | None = None,
    now: datetime | None = None,
) -> Select[tuple[uuid.UUID]]:
    """The members the segment's rule holds for now, as a SELECT of `MemberView.member_id`
    (with the purpose's consent filter when `consent`). Affinity conditions are answered
    first (`AffinityUnavailable` without a source to ask)."""
    parsed = parse_rule(segment.rule)
    prepared = await _prepare(
        session, segment.brand_id, parsed, affinity=affinity, now=now or utcnow()
    )
    return prepared.compiler.members(parsed, purpose=segment.purpose if consent else None)


async def materialise(
    session: AsyncSession,
    segment: Segment,
    *,
    affinity: AffinitySource | None = None,
    now: datetime | None = None,
) -> SegmentVersion:
    """Computes the membership now (rule and consent filter) as version `segment.version + 1`:
    stays of members who left are closed, stays for members who came are opened, one
    `segment.exited` / `segment.entered` event per change. Never commits."""
    repository = SegmentRepository(session)
    segment = await repository.lock(segment)
    if segment.deleted_at is not None:
        raise SegmentNotFound(segment.id)
    at = now or utcnow()
    parsed = parse_rule(segment.rule)
    prepared = await _prepare(session, segment.brand_id, parsed, affinity=affinity, now=at)
    for warning in prepared.warnings:
        log.warning("segments.materialise_warning", segment_id=str(segment.id), warning=warning)
    number = segment.version + 1
    counted = await repository.materialise(
        segment.id, number, prepared.compiler.members(parsed, purpose=segment.purpose)
    )
    version = SegmentVersion(
        segment_id=segment.id,
        version=number,
        brand_id=segment.brand_id,
        computed_at=at,
        size=counted.size,
        entered=counted.entered,
        exited=counted.exited,
        rule=segment.rule,
    )
    await repository.add_version(version)
    segment.version = number
    if counted.entered + counted.exited >= ANALYZE_AFTER_CHANGES:
        await repository.analyze_memberships()
    await _emit(session, segment, number, at)
    return version


async def _emit(session: AsyncSession, segment: Segment, version: int, at: datetime) -> None:
    repository = SegmentRepository(session)
    for entered, event in ((False, SegmentExited), (True, SegmentEntered)):
        async for chunk in repository.stream_changed(
            segment.id, version, entered=entered, chunk=EVENT_CHUNK
        ):
            await OUTBOX.copy_many(
                session,
                (
                    event(
                        brand_id=segment.brand_id,
                        subject_id=member_id,
                        occurred_at=at,
                        data=SegmentChangeData(
                            segment_id=segment.id,
                            segment_name=segment.name,
                            member_id=member_id,
                            version=version,
                        ),
                    )
                    for member_id in chunk
                ),
            )


# --- Versions -------------------------------------------------------------------------------


async def versions(
    session: AsyncSession, segment: Segment, *, before: int | None, limit: int
) -> list[SegmentVersion]:
    return await SegmentRepository(session).versions(segment.id, before=before, limit=limit)


async def get_version(session: AsyncSession, segment: Segment, version: int) -> SegmentVersion:
    found = await SegmentRepository(session).get_version(segment.id, version)
    if found is None:
        raise VersionNotFound(f"Segment {segment.id} has no version {version}.")
    return found


async def changes(
    session: AsyncSession, segment: Segment, version: int, *, entered: bool, page: PageRequest
) -> list[uuid.UUID]:
    """Who entered (or exited) at `version`, by member id, a page at a time."""
    await get_version(session, segment, version)
    return await SegmentRepository(session).changes(
        segment.id, version, entered=entered, page=page.forwards_only()
    )


# --- Schedule --------------------------------------------------------------------------------


async def refresh_due(
    session: AsyncSession,
    now: datetime | None = None,
    *,
    affinity: AffinityFor | None = None,
    budget_seconds: float = REFRESH_BUDGET_SECONDS,
) -> int:
    """Materialises segments whose hourly or daily refresh is due, the longest overdue first,
    until none are left or the budget is spent; `affinity` gives the source that answers a
    brand's affinity conditions. A segment that cannot be computed now (the recommender is
    away, or there is no `affinity`) is logged and left as it was, due for the next run."""
    started = time.perf_counter()
    repository = SegmentRepository(session)
    done = 0
    skipped: set[uuid.UUID] = set()
    while time.perf_counter() - started < budget_seconds:
        due = await repository.due(now or utcnow(), REFRESH_BATCH + len(skipped))
        due = [s for s in due if s.id not in skipped]
        if not due:
            break
        for segment in due:
            try:
                async with session.begin_nested():
                    await materialise(
                        session,
                        segment,
                        now=now,
                        affinity=affinity(segment.brand_id) if affinity is not None else None,
                    )
            except KinfolkError as exc:
                skipped.add(segment.id)
                log.warning(
                    "segments.refresh_skipped", segment_id=str(segment.id), reason=str(exc.detail)
                )
                continue
            done += 1
            if time.perf_counter() - started >= budget_seconds:
                break
    return done
