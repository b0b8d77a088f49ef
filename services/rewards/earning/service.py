"""Earning rules, campaigns, and the points breakdown purchases and the simulator share.

`breakdown_for()` picks what could apply to a purchase from the brand's reference data
(`earning.reference`: the rules for its skus and categories, the campaigns live at its time) and
hands it to `calculator.compute()`: `POST /rewards/v1/purchases` and
`POST /rewards/v1/rules/simulate` both go through it, so they can never disagree. Every change to
rules and campaigns here marks the brand's reference data changed in its transaction
(`ledger.reference_changed`), so the next purchase in every process sees it. The
precedence and rounding rules are documented in `services.rewards.earning.calculator`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest
from services.rewards.currencies import exponent
from services.rewards.earning import calculator
from services.rewards.earning.reference import Reference, current_reference
from services.rewards.earning.repository import EarningRepository
from services.rewards.earning.schemas import (
    ActivityRuleCreate,
    ActivityRuleOutcome,
    ActivitySimulationRequest,
    ActivitySimulationResult,
    AwardCountsRead,
    Breakdown,
    CampaignCreate,
    CampaignUpdate,
    CategoryRuleCreate,
    RuleUpdate,
    SimulationRequest,
    SimulationResult,
    SkuRuleCreate,
    TierPreview,
)
from services.rewards.errors import (
    CampaignNotFound,
    CurrencyMismatch,
    FieldNotForRuleKind,
    InconsistentCaps,
    InvalidAudience,
    InvalidWindow,
    LinesDoNotAddUp,
    NoMultiplierOrBonus,
    PointsOutOfRange,
    RuleInUse,
    RuleNotFound,
    UnknownCurrency,
    UnknownTier,
)
from services.rewards.ledger import service as ledger
from services.rewards.ledger.members import MemberSource
from services.rewards.models import (
    AudienceKind,
    Bucket,
    Campaign,
    EarningRule,
    Program,
    RuleKind,
    Tier,
)
from services.rewards.tiers import service as tiers

# --- Money checks shared by purchases and the simulator ---------------------------------------


def rates_for(program: Program, currency: str) -> calculator.Rates:
    """The program's base rate in its currency; refuses any other currency, saying what to send."""
    digits = exponent(currency)
    if digits is None:
        raise UnknownCurrency(
            f"{currency!r} is not an ISO 4217 currency code; this program's purchases are in "
            f"{program.currency}."
        )
    if currency != program.currency:
        raise CurrencyMismatch(
            f"This program runs in {program.currency}: send amount_minor in {program.currency} "
            f"(converted), not in {currency}."
        )
    return calculator.Rates(program.currency, digits, program.points_per_unit)


class PurchaseLine(Protocol):
    """A purchase line as the breakdown reads it: an API `LineIn`, or a line of the bulk
    history loader (`rewards.history`)."""

    @property
    def sku(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def quantity(self) -> int: ...
    @property
    def amount_minor(self) -> int: ...


def check_lines(amount_minor: int, lines: Sequence[PurchaseLine]) -> None:
    if lines and sum(line.amount_minor for line in lines) != amount_minor:
        total = sum(line.amount_minor for line in lines)
        raise LinesDoNotAddUp(
            f"The lines add up to {total}, not amount_minor {amount_minor}: send lines whose "
            "amount_minor values sum to the purchase's, or no lines."
        )


def pending_until(program: Program, occurred_at: datetime, now: datetime) -> datetime | None:
    """Until when a purchase's points stay pending; None when they are available at once
    (no pending days, or the return window has already passed)."""
    if program.pending_days <= 0:
        return None
    until = occurred_at + timedelta(days=program.pending_days)
    return until if until > now else None


# --- The breakdown --------------------------------------------------------------------------


def member_tier(tier: Tier | None) -> calculator.MemberTier | None:
    return calculator.MemberTier(tier.id, tier.name, tier.multiplier) if tier is not None else None


# Far above any real basket, and low enough that balances summed over a lifetime stay in 64 bits.
MAX_POINTS_PER_PURCHASE = 10**12


def breakdown_for(
    reference: Reference,
    rates: calculator.Rates,
    *,
    order_id: str | None,
    amount_minor: int,
    lines: Sequence[PurchaseLine],
    occurred_at: datetime,
    tier: Tier | None,
    member: bool,
) -> Breakdown:
    """What a purchase earns and why: the one computation purchases post and simulate shows."""
    skus = {line.sku for line in lines}
    categories = {line.category for line in lines if line.category is not None}
    breakdown = calculator.compute(
        rates,
        calculator.Purchase(
            order_id=order_id,
            amount_minor=amount_minor,
            lines=[
                calculator.Line(line.sku, line.category, line.quantity, line.amount_minor)
                for line in lines
            ],
            occurred_at=occurred_at,
        ),
        rules=reference.rules_for(skus, categories),
        campaigns=reference.campaigns_live_at(occurred_at),
        tier=member_tier(tier),
        member=member,
    )
    if breakdown.points > MAX_POINTS_PER_PURCHASE:
        raise PointsOutOfRange(
            f"This purchase would earn {breakdown.points} points, more than one purchase may "
            f"({MAX_POINTS_PER_PURCHASE}); check the amount, the currency and the multipliers."
        )
    return breakdown


async def simulate(
    session: AsyncSession, brand_id: uuid.UUID, request: SimulationRequest, members: MemberSource
) -> SimulationResult:
    """What a purchase would earn, with every rule, tier and campaign and why; writes nothing.
    A member rewards has not heard of yet (`ledger.members`) is simulated as a new account."""
    reference = await current_reference(session, brand_id)
    program = reference.program
    rates = rates_for(program, request.currency)
    check_lines(request.amount_minor, request.lines)
    now = utcnow()
    occurred_at = request.occurred_at or now
    standing: ledger.Standing | None = None
    if request.member_id is not None or request.external_id is not None:
        standing = await ledger.standing_of(
            session, brand_id, members, member_id=request.member_id, external_id=request.external_id
        )
    ladder = reference.ladder
    tier = ladder.by_id(standing.tier_id) if standing is not None else None
    breakdown = breakdown_for(
        reference,
        rates,
        order_id=request.order_id,
        amount_minor=request.amount_minor,
        lines=request.lines,
        occurred_at=occurred_at,
        tier=tier,
        member=standing is not None,
    )
    until = pending_until(program, occurred_at, now) if breakdown.points > 0 else None
    spend: int | None = None
    upgrade: TierPreview | None = None
    if standing is not None:
        window = tiers.current_window(program.qualification_window, now)
        spend = await tiers.window_spend(session, standing.member_id, window)
        if window.starts_at <= occurred_at and (
            window.ends_at is None or occurred_at < window.ends_at
        ):
            spend += request.amount_minor
        target = tiers.upgrade_target(ladder, tier, spend) if ladder else None
        if target is not None:
            upgrade = TierPreview(tier_id=target.id, name=target.name, rank=target.rank)
    return SimulationResult(
        member_id=standing.member_id if standing is not None else None,
        occurred_at=occurred_at,
        points=breakdown.points,
        points_bucket=Bucket.PENDING if until is not None else Bucket.AVAILABLE,
        pending_until=until,
        breakdown=breakdown,
        window_spend_minor=spend,
        tier_upgrade=upgrade,
    )


def _day_and_month(moment: datetime) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    following = month.replace(year=month.year + (month.month == 12), month=month.month % 12 + 1)
    return (day, day + timedelta(days=1)), (month, following)


async def simulate_activity(
    session: AsyncSession,
    brand_id: uuid.UUID,
    request: ActivitySimulationRequest,
    members: MemberSource,
) -> ActivitySimulationResult:
    """Which activity rules an activity would pay, and why, with the member's caps; writes nothing.

    The caps are those the activity consumer applies: they count a rule's awards to the member in
    the UTC day and the UTC month of the activity, and ever; an award is allowed while the count
    is below the cap. Rules pay each on its own, oldest first.
    """
    await ledger.program_for(session, brand_id)
    occurred_at = request.occurred_at or utcnow()
    standing: ledger.Standing | None = None
    if request.member_id is not None or request.external_id is not None:
        standing = await ledger.standing_of(
            session, brand_id, members, member_id=request.member_id, external_id=request.external_id
        )
    repository = EarningRepository(session)
    day, month = _day_and_month(occurred_at)
    outcomes: list[ActivityRuleOutcome] = []
    for rule in await repository.activity_rules(brand_id, request.activity):
        counts: AwardCountsRead | None = None
        why: str
        if rule.points is None:
            why = "Not awarded: the rule has no points."
        elif standing is not None and standing.member_status != "active":
            why = f"Not awarded: the member is {standing.member_status}."
        elif standing is not None:
            today, this_month, ever = await repository.award_counts(
                standing.member_id, rule.id, day=day, month=month
            )
            counts = AwardCountsRead(day=today, month=this_month, lifetime=ever)
            for cap, count, label in (
                (rule.cap_lifetime, ever, "cap_lifetime"),
                (rule.cap_per_month, this_month, "cap_per_month"),
                (rule.cap_per_day, today, "cap_per_day"),
            ):
                if cap is not None and count >= cap:
                    why = f"Not awarded: {label} {cap} reached ({count} so far)."
                    break
            else:
                why = f"Awarded: {rule.points} pts; within its caps."
        else:
            why = f"Awarded: {rule.points} pts (caps are checked with a member)."
        outcomes.append(
            ActivityRuleOutcome(
                rule_id=rule.id,
                name=rule.name,
                points=rule.points,
                cap_per_day=rule.cap_per_day,
                cap_per_month=rule.cap_per_month,
                cap_lifetime=rule.cap_lifetime,
                awards_so_far=counts,
                would_award=why.startswith("Awarded"),
                why=why,
            )
        )
    return ActivitySimulationResult(
        activity=request.activity,
        member_id=standing.member_id if standing is not None else None,
        occurred_at=occurred_at,
        rules=outcomes,
        points=sum(o.points or 0 for o in outcomes if o.would_award),
    )


# --- Earning rules --------------------------------------------------------------------------

_RULE_FIELDS: dict[RuleKind, frozenset[str]] = {
    RuleKind.CATEGORY_MULTIPLIER: frozenset({"name", "category", "multiplier", "active"}),
    RuleKind.SKU_MULTIPLIER: frozenset({"name", "sku", "multiplier", "active"}),
    RuleKind.ACTIVITY: frozenset(
        {"name", "activity", "points", "cap_per_day", "cap_per_month", "cap_lifetime", "active"}
    ),
}


def _check_caps(day: int | None, month: int | None, lifetime: int | None) -> None:
    pairs = [
        ("cap_per_day", day, "cap_per_month", month),
        ("cap_per_month", month, "cap_lifetime", lifetime),
    ]
    pairs.append(("cap_per_day", day, "cap_lifetime", lifetime))
    for small_name, small, large_name, large in pairs:
        if small is not None and large is not None and small > large:
            raise InconsistentCaps(
                f"{small_name} ({small}) cannot exceed {large_name} ({large}): lower it or raise "
                f"{large_name}."
            )


async def create_rule(
    session: AsyncSession,
    brand_id: uuid.UUID,
    payload: CategoryRuleCreate | SkuRuleCreate | ActivityRuleCreate,
) -> EarningRule:
    values: dict[str, Any] = payload.model_dump()
    values["kind"] = RuleKind(payload.kind)
    if isinstance(payload, ActivityRuleCreate):
        _check_caps(payload.cap_per_day, payload.cap_per_month, payload.cap_lifetime)
    rule = EarningRule(id=new_id(), brand_id=brand_id, created_at=utcnow(), **values)
    await ledger.reference_changed(session, brand_id)
    await EarningRepository(session).add_rule(rule)
    return rule


async def get_rule(session: AsyncSession, brand_id: uuid.UUID, rule_id: uuid.UUID) -> EarningRule:
    rule = await EarningRepository(session).rule(brand_id, rule_id)
    if rule is None:
        raise RuleNotFound(f"No earning rule {rule_id} in this brand.")
    return rule


async def list_rules(
    session: AsyncSession,
    brand_id: uuid.UUID,
    page: PageRequest,
    *,
    kind: RuleKind | None,
    active: bool | None,
) -> Sequence[EarningRule]:
    return await EarningRepository(session).rules_page(brand_id, page, kind=kind, active=active)


async def update_rule(
    session: AsyncSession, brand_id: uuid.UUID, rule_id: uuid.UUID, payload: RuleUpdate
) -> EarningRule:
    repository = EarningRepository(session)
    rule = await repository.rule(brand_id, rule_id, for_update=True)
    if rule is None:
        raise RuleNotFound(f"No earning rule {rule_id} in this brand.")
    changes = payload.model_dump(exclude_unset=True)
    foreign = sorted(set(changes) - _RULE_FIELDS[rule.kind])
    if foreign:
        allowed = ", ".join(sorted(_RULE_FIELDS[rule.kind]))
        raise FieldNotForRuleKind(
            f"{', '.join(foreign)} do(es) not apply to a {rule.kind.value} rule; it takes: "
            f"{allowed}."
        )
    if rule.kind == RuleKind.ACTIVITY:
        _check_caps(
            changes.get("cap_per_day", rule.cap_per_day),
            changes.get("cap_per_month", rule.cap_per_month),
            changes.get("cap_lifetime", rule.cap_lifetime),
        )
    for field, value in changes.items():
        setattr(rule, field, value)
    await ledger.reference_changed(session, brand_id)
    await repository.flush()
    return rule


async def delete_rule(session: AsyncSession, brand_id: uuid.UUID, rule_id: uuid.UUID) -> None:
    repository = EarningRepository(session)
    rule = await repository.rule(brand_id, rule_id, for_update=True)
    if rule is None:
        raise RuleNotFound(f"No earning rule {rule_id} in this brand.")
    if await repository.rule_has_awards(rule.id):
        raise RuleInUse(
            f"Rule {rule.name!r} has awarded points, which name it: deactivate it with "
            '{"active": false} instead.'
        )
    await ledger.reference_changed(session, brand_id)
    await repository.delete_rule(rule)


# --- Campaigns ------------------------------------------------------------------------------


async def _check_campaign(
    session: AsyncSession, brand_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Checks a campaign's settings as a whole (after a PATCH, the merged ones)."""
    starts_at: datetime = values["starts_at"]
    ends_at: datetime = values["ends_at"]
    if ends_at <= starts_at:
        raise InvalidWindow(
            f"The campaign ends ({ends_at.isoformat()}) before or when it starts "
            f"({starts_at.isoformat()}): ends_at must be after starts_at."
        )
    if values.get("multiplier") is None and values.get("bonus_points") is None:
        raise NoMultiplierOrBonus(
            "A campaign must multiply points, add bonus points, or both: send multiplier "
            "and/or bonus_points."
        )
    audience: AudienceKind = values["audience"]
    tier_ids: list[uuid.UUID] = values["tier_ids"]
    segment_id: uuid.UUID | None = values.get("segment_id")
    if audience == AudienceKind.ALL and (tier_ids or segment_id is not None):
        raise InvalidAudience(
            "Audience `all` takes no tier_ids or segment_id: drop them or pick that audience."
        )
    if audience == AudienceKind.TIERS:
        if not tier_ids or segment_id is not None:
            raise InvalidAudience("Audience `tiers` needs tier_ids (and no segment_id).")
        known = await EarningRepository(session).known_tier_ids(brand_id, tier_ids)
        unknown = [str(t) for t in tier_ids if t not in known]
        if unknown:
            raise UnknownTier(
                f"No tier {', '.join(unknown)} in this brand: see GET /rewards/v1/tiers."
            )
    if audience == AudienceKind.SEGMENT and (segment_id is None or tier_ids):
        raise InvalidAudience("Audience `segment` needs a segment_id (and no tier_ids).")


async def create_campaign(
    session: AsyncSession, brand_id: uuid.UUID, payload: CampaignCreate
) -> Campaign:
    values = payload.model_dump()
    values["tier_ids"] = list(dict.fromkeys(values["tier_ids"]))
    await _check_campaign(session, brand_id, values)
    campaign = Campaign(id=new_id(), brand_id=brand_id, created_at=utcnow(), **values)
    await ledger.reference_changed(session, brand_id)
    await EarningRepository(session).add_campaign(campaign)
    return campaign


async def get_campaign(
    session: AsyncSession, brand_id: uuid.UUID, campaign_id: uuid.UUID
) -> Campaign:
    campaign = await EarningRepository(session).campaign(brand_id, campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"No campaign {campaign_id} in this brand.")
    return campaign


async def list_campaigns(
    session: AsyncSession,
    brand_id: uuid.UUID,
    page: PageRequest,
    *,
    live_at: datetime | None,
    active: bool | None,
) -> Sequence[Campaign]:
    return await EarningRepository(session).campaigns_page(
        brand_id, page, live_at=live_at, active=active
    )


async def update_campaign(
    session: AsyncSession, brand_id: uuid.UUID, campaign_id: uuid.UUID, payload: CampaignUpdate
) -> Campaign:
    repository = EarningRepository(session)
    campaign = await repository.campaign(brand_id, campaign_id, for_update=True)
    if campaign is None:
        raise CampaignNotFound(f"No campaign {campaign_id} in this brand.")
    changes = payload.model_dump(exclude_unset=True)
    if "tier_ids" in changes:
        changes["tier_ids"] = list(dict.fromkeys(changes["tier_ids"]))
    fields = ("starts_at", "ends_at", "audience", "tier_ids", "segment_id", "multiplier")
    merged = {field: changes.get(field, getattr(campaign, field)) for field in fields}
    merged["bonus_points"] = changes.get("bonus_points", campaign.bonus_points)
    await _check_campaign(session, brand_id, merged)
    for field, value in changes.items():
        setattr(campaign, field, value)
    await ledger.reference_changed(session, brand_id)
    await repository.flush()
    return campaign


async def delete_campaign(
    session: AsyncSession, brand_id: uuid.UUID, campaign_id: uuid.UUID
) -> None:
    repository = EarningRepository(session)
    campaign = await repository.campaign(brand_id, campaign_id, for_update=True)
    if campaign is None:
        raise CampaignNotFound(f"No campaign {campaign_id} in this brand.")
    await ledger.reference_changed(session, brand_id)
    await repository.delete_campaign(campaign)
