"""Activity points: what members do elsewhere earns points by the brand's `activity` rules.

An activity is a name, usually the event type that reports it (`post.approved`,
`review.published`, `prompt.answered`, `experience.attended` (from `experience.checked_in`),
`experience.reviewed`, `challenge.completed`, `milestone.reached`, `referral.purchased`), plus
two of rewards' own: `profile.completed` (from `member.updated`, see `activity.consumer`) and
`birthday` (the daily job below). `award_activity` is the one entry point: the consumer calls
it for events, and any service can call it in-process.

Rules (all in one transaction, under the member's account lock, so concurrent events for one
member cannot race past a cap):

- Every active rule of kind `activity` whose `activity` matches fires, each on its own, in rule id
  (creation) order; an activity no rule names is ignored. A rule without `points` is skipped
  (`misconfigured`): nothing to award.
- Only active members earn: nothing for erased or suspended members, nor in a brand without a
  program. A member rewards has not heard of yet raises `MemberNotFound`, so the consumer retries
  (the member projection may simply lag behind).
- Once per (rule, event id): `activity_awards` is unique on it, so a redelivered event pays once.
- Caps count a rule's awards to the member (times, not points): `cap_per_day` in the UTC day of
  the activity, `cap_per_month` in its UTC calendar month, `cap_lifetime` ever. An award is allowed
  while the count is below the cap: a cap of 3 pays the 1st to 3rd, not the 4th. Awards are dated by
  when the activity happened (`occurred_at`), not by when the event arrived, so lag and
  redelivery never move an award into another day. An activity over a cap records nothing.
- Points go to `available` (an `earn` entry, reason = the rule's name, `source_type="activity"`,
  `source_id=<award id>`), except for content held for review: the community reports a post or
  a prompt answer when it is written, and while it is held its awards are `pending`
  (`bucket=PENDING`, keyed by `content_key`). `settle_content` makes them available when the
  content is approved; `revoke_content` voids them if it is removed first, or takes available
  points back (a `reverse` entry, which may leave a negative balance, as a return does) if it
  is removed after approval. The award is activity for the inactivity expiry rule.
- An event may name its own amount (a prompt's or a challenge's points): it is paid instead of
  the rule's `points`, still only through an active rule, with the rule's caps.
- Birthdays: a daily job pays the `birthday` rules to active members with a birthday
  (`accounts.birthday`) in the current UTC month, once per calendar year: the event id is derived
  from the member and the year, so a second run, or a second day in the month, pays nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.rewards.activity.repository import ActivityRepository
from services.rewards.errors import MemberNotFound
from services.rewards.job_runs import RunLimit, in_batches, itself
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.ledger.service import Movement, post, release_pending
from services.rewards.models import (
    ActivityAward,
    AwardState,
    Bucket,
    EarningRule,
    EntryKind,
    Program,
)

POST_APPROVED = "post.approved"
REVIEW_PUBLISHED = "review.published"
PROMPT_ANSWERED = "prompt.answered"
EXPERIENCE_ATTENDED = "experience.attended"
REFERRAL_PURCHASED = "referral.purchased"
EXPERIENCE_REVIEWED = "experience.reviewed"
CHALLENGE_COMPLETED = "challenge.completed"
MILESTONE_REACHED = "milestone.reached"
PROFILE_COMPLETED = "profile.completed"
BIRTHDAY = "birthday"

# Event ids rewards derives for activities that have no event of their own (uuid5 in this space).
ACTIVITY_NAMESPACE = uuid.UUID("8932a5fb-5ea9-4108-86e5-f7dba2ac65ca")

BATCH_SIZE = 500


class Outcome(StrEnum):
    AWARDED = "awarded"
    DUPLICATE = "duplicate"  # this rule already paid this event
    CAPPED = "capped"  # a cap is reached; nothing recorded
    MISCONFIGURED = "misconfigured"  # the rule has no points to award


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule_id: uuid.UUID
    outcome: Outcome
    points: int
    entry_id: uuid.UUID | None
    detail: str


@dataclass(frozen=True, slots=True)
class ActivityResult:
    """What an activity did: one result per matching rule, or why no rule was considered."""

    rules: tuple[RuleResult, ...] = ()
    ignored: str | None = None

    @property
    def points(self) -> int:
        return sum(r.points for r in self.rules if r.outcome == Outcome.AWARDED)


def derived_event_id(*parts: object) -> uuid.UUID:
    """A stable event id for an activity without an event of its own (a birthday in a year)."""
    return uuid.uuid5(ACTIVITY_NAMESPACE, ":".join(str(p) for p in parts))


def birthday_event_id(member_id: uuid.UUID, year: int) -> uuid.UUID:
    return derived_event_id(BIRTHDAY, member_id, year)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("activity times must be timezone-aware")
    return moment.astimezone(UTC)


def _day(moment: datetime) -> tuple[datetime, datetime]:
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def _month(moment: datetime) -> tuple[datetime, datetime]:
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    return start, following


@dataclass(frozen=True, slots=True)
class Award:
    """How to pay: into which bucket, for which content, and whether the event names the
    amount."""

    bucket: Bucket = Bucket.AVAILABLE
    content_key: str | None = None
    points: int | None = None


AVAILABLE_AWARD = Award()


class ActivityRules:
    """The brands' active rules per activity, each read once: for many awards in one
    transaction (a consumer's batch, the birthday job). Rules change only through staff
    requests, never inside such a transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._repository = ActivityRepository(session)
        self._rules: dict[tuple[uuid.UUID, str], Sequence[EarningRule]] = {}

    async def of(self, brand_id: uuid.UUID, activity: str) -> Sequence[EarningRule]:
        found = self._rules.get((brand_id, activity))
        if found is None:
            found = await self._repository.rules_for(brand_id, activity)
            self._rules[brand_id, activity] = found
        return found


async def award_activity(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    activity: str,
    event_id: uuid.UUID,
    occurred_at: datetime,
    award: Award = AVAILABLE_AWARD,
    rules_of: ActivityRules | None = None,
) -> ActivityResult:
    """Pay the brand's rules for `activity` to the member, once per event, within the caps.
    `rules_of` shares the rules read between the awards of one transaction."""
    occurred_at = _utc(occurred_at)
    ledger = LedgerRepository(session)
    program = await ledger.program(brand_id)
    if program is None:
        return ActivityResult(ignored="the brand has no loyalty program")
    rules = await (rules_of or ActivityRules(session)).of(brand_id, activity)
    if not rules:
        return ActivityResult(ignored=f"no active rule awards {activity!r}")
    account = await ledger.lock_account(brand_id, member_id)
    if account is None:
        raise MemberNotFound(f"No member {member_id} in this brand (yet).")
    if account.member_status != "active":
        return ActivityResult(ignored=f"the member is {account.member_status}")
    results = [
        await _apply_rule(session, program, rule, member_id, event_id, occurred_at, award)
        for rule in rules
    ]
    return ActivityResult(rules=tuple(results))


async def _apply_rule(
    session: AsyncSession,
    program: Program,
    rule: EarningRule,
    member_id: uuid.UUID,
    event_id: uuid.UUID,
    occurred_at: datetime,
    award: Award,
) -> RuleResult:
    def result(outcome: Outcome, detail: str) -> RuleResult:
        return RuleResult(rule.id, outcome, 0, None, detail)

    points = award.points if award.points is not None else rule.points
    if points is None or points <= 0:
        return result(Outcome.MISCONFIGURED, "the rule has no points to award")
    repository = ActivityRepository(session)
    if await repository.award_exists(rule.id, event_id):
        return result(Outcome.DUPLICATE, "this event was already awarded")
    counts = await repository.award_counts(
        member_id, rule.id, day=_day(occurred_at), month=_month(occurred_at)
    )
    for cap, count, label in (
        (rule.cap_lifetime, counts.lifetime, "cap_lifetime"),
        (rule.cap_per_month, counts.month, "cap_per_month"),
        (rule.cap_per_day, counts.day, "cap_per_day"),
    ):
        if cap is not None and count >= cap:
            return result(Outcome.CAPPED, f"{label} {cap} reached")
    award_id = new_id()
    added = await repository.add_award(
        {
            "id": award_id,
            "brand_id": program.brand_id,
            "member_id": member_id,
            "rule_id": rule.id,
            "event_id": event_id,
            "points": points,
            "awarded_at": occurred_at,
            "content_key": award.content_key,
            "state": AwardState.PENDING if award.bucket == Bucket.PENDING else AwardState.AVAILABLE,
        }
    )
    if not added:
        return result(Outcome.DUPLICATE, "this event was already awarded")
    posted = await post(
        session,
        program.brand_id,
        program,
        Movement(
            member_id=member_id,
            kind=EntryKind.EARN,
            bucket=award.bucket,
            points=points,
            reason=rule.name,
            source_type="activity",
            source_id=str(award_id),
            occurred_at=occurred_at,
        ),
    )
    return RuleResult(rule.id, Outcome.AWARDED, points, posted.entry_id, "awarded")


async def settle_content(
    session: AsyncSession, brand_id: uuid.UUID, content_key: str, occurred_at: datetime
) -> int:
    """The content was approved: its pending awards become available. Returns the points."""
    awards = await _locked_awards(session, brand_id, content_key, AwardState.PENDING)
    if not awards:
        return 0
    program = await LedgerRepository(session).program(brand_id)
    assert program is not None  # pending awards exist only in brands with a program
    occurred_at = _utc(occurred_at)
    for award in awards:
        await release_pending(
            session,
            brand_id,
            program,
            member_id=award.member_id,
            points=award.points,
            reason="Approved",
            source_type="activity",
            source_id=str(award.id),
            occurred_at=occurred_at,
        )
    await ActivityRepository(session).set_state([a.id for a in awards], AwardState.AVAILABLE)
    return sum(a.points for a in awards)


async def revoke_content(
    session: AsyncSession, brand_id: uuid.UUID, content_key: str, occurred_at: datetime
) -> int:
    """The content was removed: pending awards are voided, available ones taken back (even if
    spent: the balance may go negative). Returns the points taken out of either bucket."""
    pending = await _locked_awards(session, brand_id, content_key, AwardState.PENDING)
    paid = await _locked_awards(session, brand_id, content_key, AwardState.AVAILABLE)
    if not pending and not paid:
        return 0
    program = await LedgerRepository(session).program(brand_id)
    assert program is not None
    occurred_at = _utc(occurred_at)
    for award, kind, bucket in (
        *((a, EntryKind.VOID, Bucket.PENDING) for a in pending),
        *((a, EntryKind.REVERSE, Bucket.AVAILABLE) for a in paid),
    ):
        await post(
            session,
            brand_id,
            program,
            Movement(
                member_id=award.member_id,
                kind=kind,
                bucket=bucket,
                points=-award.points,
                reason="Content removed",
                source_type="activity",
                source_id=str(award.id),
                occurred_at=occurred_at,
            ),
            allow_negative=True,
        )
    repository = ActivityRepository(session)
    await repository.set_state([a.id for a in pending], AwardState.VOIDED)
    await repository.set_state([a.id for a in paid], AwardState.REVERSED)
    return sum(a.points for a in (*pending, *paid))


async def _locked_awards(
    session: AsyncSession, brand_id: uuid.UUID, content_key: str, state: AwardState
) -> list[ActivityAward]:
    """The content's awards in `state`, under their members' account locks (taken first, in
    the same order as every other ledger write, so settling cannot deadlock with earning)."""
    repository = ActivityRepository(session)
    awards = await repository.content_awards(brand_id, content_key, state)
    ledger = LedgerRepository(session)
    for member_id in sorted({a.member_id for a in awards}):
        await ledger.lock_account(brand_id, member_id)
    return await repository.content_awards(brand_id, content_key, state)


@dataclass(frozen=True, slots=True)
class _BirthdayRules:
    brand_id: uuid.UUID
    rule_ids: list[uuid.UUID]


async def award_birthdays(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    limit: RunLimit | None = None,
) -> int:
    """The daily job: pay `birthday` rules to members born in this UTC month, once a year (as
    far as `limit` goes: see `RunLimit`).

    Returns how many members were paid.
    """
    moment = _utc(utcnow() if now is None else now)
    year_start = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    limit = limit or RunLimit()
    repository = ActivityRepository(session)
    rules_of = ActivityRules(session)
    by_brand = [
        _BirthdayRules(brand_id, rule_ids)
        for brand_id, rule_ids in (await repository.rules_by_brand(BIRTHDAY)).items()
    ]
    paid = 0
    for brand in limit.brands(by_brand):
        if await LedgerRepository(session).program(brand.brand_id) is None:
            continue  # no program: nothing to pay, no need to visit its members
        if limit.stop_before(brand):
            break

        async def fetch(after: uuid.UUID | None, brand: _BirthdayRules = brand) -> list[uuid.UUID]:
            return await repository.birthday_members(
                brand.brand_id,
                month=moment.month,
                rule_ids=brand.rule_ids,
                since=year_start,
                after=after,
                limit=batch_size,
            )

        async def pay(member_ids: list[uuid.UUID], brand_id: uuid.UUID = brand.brand_id) -> None:
            nonlocal paid
            for member_id in member_ids:
                result = await award_activity(
                    session,
                    brand_id,
                    member_id,
                    BIRTHDAY,
                    birthday_event_id(member_id, moment.year),
                    moment,
                    rules_of=rules_of,
                )
                paid += result.points > 0

        await in_batches(fetch, pay, batch_size, brand.brand_id, limit, member_of=itself)
    return paid
