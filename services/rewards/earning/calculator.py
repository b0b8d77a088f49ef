"""How many points a purchase earns, and why: the one computation purchases and simulate share.

Pure: it gets the purchase, the program's base rate, the rules and campaigns that could apply
and the member's tier, and returns the breakdown. `POST /rewards/v1/purchases` posts exactly what
`POST /rewards/v1/rules/simulate` shows, because both call `compute()`.

Precedence (deterministic, the same on every call):

1. **Base.** Each line earns `amount_minor / 10^exponent * points_per_unit`, the exponent being
   the ISO 4217 minor-unit digits of the currency (EUR 2, JPY 0, KWD 3). A purchase sent without
   lines is one line, the whole order, with no sku and no category.
2. **Line rule.** A line gets at most one sku or category multiplier. An active sku rule for the
   line's sku beats any category rule; otherwise an active category rule for the line's category
   applies. Among several rules of the same kind for the same sku (or category), the highest
   multiplier wins; at equal multipliers, the oldest rule. No rule: * 1.
3. **Tier.** The member's tier multiplier applies to every line: the tier they hold when the
   purchase is recorded, before any upgrade the purchase itself causes. No member or no tier: * 1.
4. **Campaign multiplier.** A campaign is live for a purchase when it is active, its window
   contains `occurred_at` (`starts_at` inclusive, `ends_at` exclusive), its audience matches
   (`all`; `tiers`: the member's tier is in `tier_ids`; `segment`: stored, but matches no one
   until the marketing service exists) and its category filter (empty: every line) covers the
   line. Campaign multipliers do **not** stack: each line takes the highest multiplier among the
   live campaigns covering it (at equal multipliers, the oldest campaign).
5. **Bonus.** Every live campaign with `bonus_points` covering at least one line adds its bonus,
   once per purchase; bonuses add up and are not multiplied.

Line points = base * rule * tier * campaign, computed exactly (decimals, no floats). The
purchase earns `floor(sum of line points + bonuses)`: rounded down **once**, on the total, so
splitting an order into lines never loses points.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from math import floor

from services.rewards.currencies import format_minor
from services.rewards.earning.schemas import (
    Breakdown,
    CampaignHit,
    CampaignOutcome,
    LineBreakdown,
    RuleHit,
    TierApplied,
)
from services.rewards.models import AudienceKind, RuleKind

# Every input (amounts, the rate, multipliers) is a decimal, and so is every product and sum of
# them: 60 digits hold them all, and a rounding would raise (Inexact), never pass unseen.
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
_ONE = Decimal(1)
TIMES = "\u00d7"  # the multiplication sign, in the reasons members read


@dataclass(frozen=True, slots=True)
class Line:
    sku: str | None
    category: str | None
    quantity: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class LineRule:
    id: uuid.UUID
    name: str
    kind: RuleKind  # sku_multiplier or category_multiplier
    key: str  # the sku or the category it matches
    multiplier: Decimal


@dataclass(frozen=True, slots=True)
class LiveCampaign:
    id: uuid.UUID
    name: str
    audience: AudienceKind
    tier_ids: frozenset[uuid.UUID]
    categories: frozenset[str]
    multiplier: Decimal | None
    bonus_points: int | None


@dataclass(frozen=True, slots=True)
class MemberTier:
    id: uuid.UUID
    name: str
    multiplier: Decimal


@dataclass(frozen=True, slots=True)
class Rates:
    currency: str
    exponent: int
    points_per_unit: int


@dataclass(frozen=True, slots=True)
class Purchase:
    order_id: str | None
    amount_minor: int
    lines: Sequence[Line]  # empty: the whole order is one line
    occurred_at: datetime


def exact(value: Decimal) -> Decimal:
    """The decimal in its shortest form, as breakdowns show it: an integer as one (14, 1400),
    anything else without trailing zeros (14.1, not 14.10)."""
    whole = int(value)
    return Decimal(whole) if whole == value else value.normalize(_EXACT)


def number(value: Decimal) -> str:
    """A multiplier for people: 2, 1.5 (not 2.000)."""
    return format(value.normalize(), "f")


def _best(rules: Sequence[LineRule]) -> LineRule | None:
    # Highest multiplier; at equal multipliers the oldest (UUIDv7 ids sort by creation).
    return min(rules, key=lambda r: (-r.multiplier, r.id.bytes), default=None)


def _audience_match(campaign: LiveCampaign, tier: MemberTier | None, member: bool) -> str | None:
    """None when the campaign's audience includes the member, else why not."""
    if campaign.audience == AudienceKind.ALL:
        return None
    if campaign.audience == AudienceKind.SEGMENT:
        return "segment audiences match no one until the marketing service exists"
    if not member:
        return "its audience is tiers, and no member was given"
    if tier is None or tier.id not in campaign.tier_ids:
        return "its audience is tiers the member is not in"
    return None


def compute(
    rates: Rates,
    purchase: Purchase,
    *,
    rules: Sequence[LineRule],
    campaigns: Sequence[LiveCampaign],
    tier: MemberTier | None,
    member: bool,
) -> Breakdown:
    """The breakdown of a purchase's points. `campaigns` are those live at `occurred_at`."""
    lines = list(purchase.lines) or [Line(None, None, 1, purchase.amount_minor)]
    unit = Decimal(rates.points_per_unit).scaleb(-rates.exponent, _EXACT)
    tier_multiplier = tier.multiplier if tier is not None else _ONE

    by_sku: dict[str, list[LineRule]] = {}
    by_category: dict[str, list[LineRule]] = {}
    for rule in rules:
        target = by_sku if rule.kind == RuleKind.SKU_MULTIPLIER else by_category
        target.setdefault(rule.key, []).append(rule)

    # Which live campaigns reach the member, and which lines each covers.
    reaching: list[LiveCampaign] = []
    refused: dict[uuid.UUID, str] = {}
    covered: dict[uuid.UUID, list[int]] = {}
    ordered = sorted(campaigns, key=lambda c: c.id.bytes)
    for campaign in ordered:
        why_not = _audience_match(campaign, tier, member)
        if why_not is not None:
            refused[campaign.id] = why_not
            continue
        covered[campaign.id] = [
            index
            for index, line in enumerate(lines)
            if not campaign.categories or line.category in campaign.categories
        ]
        if not covered[campaign.id]:
            refused[campaign.id] = "its categories filter matches no line of this purchase"
            continue
        reaching.append(campaign)

    won: dict[uuid.UUID, list[int]] = {c.id: [] for c in reaching}
    breakdown_lines: list[LineBreakdown] = []
    total = Decimal(0)
    for index, line in enumerate(lines):
        base = _EXACT.multiply(unit, line.amount_minor)
        hit, rule_why = _line_rule(line, by_sku, by_category)
        rule_multiplier = hit.multiplier if hit is not None else _ONE
        multiplying = [c for c in reaching if c.multiplier is not None and index in covered[c.id]]
        winner = min(multiplying, key=lambda c: (-(c.multiplier or 0), c.id.bytes), default=None)
        campaign_multiplier = _ONE
        if winner is not None and winner.multiplier is not None:
            campaign_multiplier = winner.multiplier
            won[winner.id].append(index)
        multiplier = _EXACT.multiply(
            _EXACT.multiply(rule_multiplier, tier_multiplier), campaign_multiplier
        )
        line_points = _EXACT.multiply(base, multiplier)
        total = _EXACT.add(total, line_points)
        breakdown_lines.append(
            LineBreakdown(
                sku=line.sku,
                category=line.category,
                quantity=line.quantity,
                amount_minor=line.amount_minor,
                base_points=exact(base),
                rule=(
                    RuleHit(
                        rule_id=hit.id,
                        name=hit.name,
                        kind=hit.kind,
                        multiplier=hit.multiplier,
                        why=rule_why,
                    )
                    if hit is not None
                    else None
                ),
                tier_multiplier=tier_multiplier,
                campaign=(
                    CampaignHit(
                        campaign_id=winner.id, name=winner.name, multiplier=campaign_multiplier
                    )
                    if winner is not None
                    else None
                ),
                multiplier=exact(multiplier),
                points=exact(line_points),
            )
        )

    outcomes: list[CampaignOutcome] = []
    bonus_total = 0
    for campaign in ordered:
        if campaign.id in refused:
            outcomes.append(_outcome(campaign, [], 0, f"Not applied: {refused[campaign.id]}."))
            continue
        bonus = campaign.bonus_points or 0
        bonus_total += bonus
        lines_won = won[campaign.id]
        outcomes.append(
            _outcome(campaign, lines_won, bonus, _campaign_why(campaign, lines_won, covered, bonus))
        )
    total = _EXACT.add(total, bonus_total)
    points = floor(total)
    return Breakdown(
        currency=rates.currency,
        exponent=rates.exponent,
        points_per_unit=rates.points_per_unit,
        amount_minor=purchase.amount_minor,
        lines=breakdown_lines,
        tier=(
            TierApplied(tier_id=tier.id, name=tier.name, multiplier=tier.multiplier)
            if tier is not None
            else None
        ),
        campaigns=outcomes,
        bonus_points=bonus_total,
        exact_points=exact(total),
        points=points,
        reason=_reason(rates, purchase, breakdown_lines, tier, outcomes, points),
    )


def _line_rule(
    line: Line, by_sku: dict[str, list[LineRule]], by_category: dict[str, list[LineRule]]
) -> tuple[LineRule | None, str]:
    sku_rule = _best(by_sku.get(line.sku, [])) if line.sku is not None else None
    category_rule = _best(by_category.get(line.category, [])) if line.category is not None else None
    if sku_rule is not None:
        why = f"sku {line.sku} matches"
        if category_rule is not None:
            why += f"; sku rules beat category rules (not {category_rule.name!r})"
        return sku_rule, why
    if category_rule is not None:
        return category_rule, f"category {line.category} matches"
    return None, ""


def _outcome(campaign: LiveCampaign, lines: list[int], bonus: int, why: str) -> CampaignOutcome:
    return CampaignOutcome(
        campaign_id=campaign.id,
        name=campaign.name,
        multiplier=campaign.multiplier,
        bonus_points=campaign.bonus_points,
        applied=bool(lines) or bonus > 0,
        lines=lines,
        bonus_awarded=bonus,
        why=why,
    )


def _campaign_why(
    campaign: LiveCampaign, lines_won: list[int], covered: dict[uuid.UUID, list[int]], bonus: int
) -> str:
    parts: list[str] = []
    if campaign.multiplier is not None:
        if lines_won:
            parts.append(f"{TIMES} {number(campaign.multiplier)} on {len(lines_won)} line(s)")
        lost = len(covered[campaign.id]) - len(lines_won)
        if lost:
            parts.append(
                f"a higher campaign multiplier won on {lost} line(s) (campaigns do not stack)"
            )
    if bonus:
        parts.append(f"+{bonus} bonus points")
    return (
        "Applied: " + "; ".join(parts) + "."
        if lines_won or bonus
        else "Not applied: " + ("; ".join(parts) + ".")
    )


def _reason(
    rates: Rates,
    purchase: Purchase,
    lines: Sequence[LineBreakdown],
    tier: MemberTier | None,
    outcomes: Sequence[CampaignOutcome],
    points: int,
) -> str:
    """One line a member can read: "Order A-1: 120.00 EUR x 1 pt/EUR x 1.5 (Gold) = 180 pts".

    (with the multiplication sign, TIMES, for the x)
    """
    what = f"Order {purchase.order_id}" if purchase.order_id else "Purchase"
    text = (
        f"{what}: {format_minor(purchase.amount_minor, rates.currency)} "
        f"{TIMES} {rates.points_per_unit} pt/{rates.currency}"
    )
    everywhere = len(lines)
    rules: dict[uuid.UUID, tuple[RuleHit, int]] = {}
    for line in lines:
        if line.rule is not None:
            hit, amount = rules.get(line.rule.rule_id, (line.rule, 0))
            rules[line.rule.rule_id] = (hit, amount + line.amount_minor)
    for hit, amount in rules.values():
        scope = format_minor(amount, rates.currency)
        text += f" {TIMES} {number(hit.multiplier)} ({hit.name} on {scope})"
    if tier is not None and tier.multiplier != 1:
        text += f" {TIMES} {number(tier.multiplier)} ({tier.name})"
    for outcome in outcomes:
        if outcome.lines and outcome.multiplier is not None:
            scope = (
                ""
                if len(outcome.lines) == everywhere
                else (
                    " on "
                    + format_minor(
                        sum(lines[i].amount_minor for i in outcome.lines), rates.currency
                    )
                )
            )
            text += f" {TIMES} {number(outcome.multiplier)} ({outcome.name}{scope})"
    for outcome in outcomes:
        if outcome.bonus_awarded:
            text += f" + {outcome.bonus_awarded} ({outcome.name})"
    return f"{text} = {points} {'pt' if points == 1 else 'pts'}"
