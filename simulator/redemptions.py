"""What the simulated members do with their points and their orders besides buying: they redeem
perks of the categories they like, and bring some orders back.

- **The catalog** (`PERKS`): a dozen perks over the world's categories, none with a stock limit
  or a code pool (so rewards' history loader can replay them chunk by chunk), two open only to
  the upper tiers, a few once or twice per member. `configure_perks` creates them through
  rewards' perks service (the program phase calls it).
- **Redemptions**: a share of members redeem at all. A redeemer counts the points their orders
  bring (one point per currency unit, once the return window has closed), and when that
  estimate covers the perk they want next (a category drawn from their hidden tastes, a perk of
  it), they ask for it some days later. The estimate ignores multipliers, returns and expiry on
  purpose: the replay refuses what the member cannot afford then, as the API would. Upper-tier
  perks are wished only by members whose estimated spend over the last year reaches the tier's
  threshold in the demo's program; a perk's per-member limit is respected.
- **Returns**: about `RETURN_SHARE` of orders come back within `RETURN_DAYS`: the whole order
  (its lines), one line of a multi-line order, or a share of a one-line order by amount.

Everything is a pure function of the world's parameters and the chunk's orders, drawn from
streams of its own (`world._rng`, streams 300..399), so a chunk gives the same intents whichever
process makes it, and adding these streams changed no other array of the world.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from services.demo.members import CATEGORIES
from services.demo.rewards import PROGRAM, TIERS
from services.kernel.pagination import PageRequest
from services.rewards.history.schemas import HistoricLine, HistoricRedemption, HistoricReturn
from services.rewards.ledger.schemas import ProgramSettings
from services.rewards.models import Perk, PerkKind
from services.rewards.perks import service as perks_service
from services.rewards.perks.repository import PerkFilters
from services.rewards.perks.schemas import PerkCreate
from services.rewards.tiers import service as tiers_service
from services.rewards.tiers.schemas import TierCreate
from simulator import world
from simulator.records import order_id

# Random streams (300..399 belong to this module).
_REDEMPTIONS = 300
_RETURNS = 301

REDEEMER_SHARE = 0.45  # members who ever redeem
MEAN_DELAY_DAYS = 12.0  # between affording a perk and asking for it
WISHES_PER_ORDER = 2  # at most this many redemptions follow one order's points
RETURN_SHARE = 0.05
RETURN_DAYS = 30
WHOLE_RETURN_SHARE = 0.55  # the rest are partial

_DAY = world.SECONDS_PER_DAY
_YEAR = 365 * _DAY
# What members expect of the program: the demo's, which the simulator configures.
_DEMO = ProgramSettings.model_validate(PROGRAM)
_PENDING_SECONDS = _DEMO.pending_days * _DAY
_MINOR_PER_UNIT = 100  # the demo's currency (EUR) has cents
# Spend over a year (minor units) a tier of this rank takes.
_RANK_THRESHOLD = {
    tier.rank: tier.threshold_minor for tier in map(TierCreate.model_validate, TIERS)
}


@dataclass(frozen=True, slots=True)
class SimPerk:
    name: str
    category: str  # one of CATEGORIES
    cost_points: int
    kind: PerkKind = PerkKind.FREE_PRODUCT
    min_rank: int = 0  # > 0: only tiers of this rank and above may redeem it
    per_member_limit: int | None = None


PERKS: tuple[SimPerk, ...] = (
    SimPerk("Skincare sample trio", "skincare", 150),
    SimPerk("Travel-size serum", "skincare", 450),
    SimPerk("Lip and liner duo", "makeup", 250),
    SimPerk("Makeup masterclass", "makeup", 1_200, PerkKind.EXPERIENCE_ACCESS, per_member_limit=1),
    SimPerk("Fragrance discovery set", "fragrance", 500),
    SimPerk(
        "Private fragrance evening",
        "fragrance",
        1_500,
        PerkKind.EXPERIENCE_ACCESS,
        min_rank=2,
        per_member_limit=1,
    ),
    SimPerk("Hair mask mini", "hair", 200),
    SimPerk("Salon blow-dry", "hair", 800, PerkKind.CUSTOM, min_rank=1, per_member_limit=2),
    SimPerk("Bath soak set", "bath", 150),
    SimPerk("Donate 5 EUR to a skin charity", "bath", 300, PerkKind.DONATION),
    SimPerk("Brush cleaning kit", "tools", 200),
    SimPerk("Pro brush set", "tools", 900),
)
_CATEGORY = np.asarray([CATEGORIES.index(p.category) for p in PERKS], dtype=np.int64)
_COST = np.asarray([p.cost_points for p in PERKS], dtype=np.int64)
# The perks by category (indexes into PERKS, stable): category c's are
# _PERK_ORDER[_PERK_START[c] : _PERK_START[c] + _PERK_COUNT[c]].
_PERK_ORDER = np.argsort(_CATEGORY, kind="stable")
_PERK_COUNT = np.bincount(_CATEGORY, minlength=len(CATEGORIES))
_PERK_START = np.concatenate(([0], np.cumsum(_PERK_COUNT)[:-1]))
assert _PERK_COUNT.all(), "every category needs a perk"


# --- The catalog ----------------------------------------------------------------------------


async def _brand_perks(session: AsyncSession, brand_id: uuid.UUID) -> list[Perk]:
    found: list[Perk] = []
    after: uuid.UUID | None = None
    while True:
        page = await perks_service.list_perks(
            session, brand_id, PerkFilters(), PageRequest(limit=100, after=after)
        )
        found += page
        if len(page) < 100:
            return found
        after = page[-1].id


async def configure_perks(session: AsyncSession, brand_id: uuid.UUID) -> list[Perk]:
    """The simulated catalog in the brand (its perks in `PERKS` order), created through rewards'
    perks service; perks it already has by name are kept (a rerun adds only what is missing).
    An upper-tier perk names the brand's tiers of that rank and above (everyone, if it has
    none)."""
    existing = {perk.name: perk for perk in await _brand_perks(session, brand_id)}
    ladder = await tiers_service.list_tiers(session, brand_id)
    made = []
    for spec in PERKS:
        perk = existing.get(spec.name)
        if perk is None:
            perk = await perks_service.create_perk(
                session,
                brand_id,
                PerkCreate(
                    name=spec.name,
                    category=spec.category,
                    kind=spec.kind,
                    cost_points=spec.cost_points,
                    tier_ids=[t.id for t in ladder if spec.min_rank and t.rank >= spec.min_rank],
                    per_member_limit=spec.per_member_limit,
                ),
            )
        made.append(perk)
    return made


async def perk_ids(session: AsyncSession, brand_id: uuid.UUID) -> list[uuid.UUID | None]:
    """The brand's id of each of `PERKS` (None: not in the brand, or not one history can
    replay: inactive, limited, a code perk). A brand without the catalog gets no redemptions."""
    by_name = {perk.name: perk for perk in await _brand_perks(session, brand_id)}
    ids: list[uuid.UUID | None] = []
    for spec in PERKS:
        perk = by_name.get(spec.name)
        replayable = (
            perk is not None
            and perk.active
            and perk.inventory_total is None
            and perk.kind is not PerkKind.DISCOUNT_CODE
            and not perk.is_birthday_gift
        )
        ids.append(perk.id if perk is not None and replayable else None)
    return ids


# --- Intents --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Intents:
    """One chunk's redemptions (by member, in time order) and returns (by order)."""

    redemption_member: world.I64  # member index
    redemption_perk: world.I64  # index into PERKS
    redemption_at: world.I64  # seconds since the world's start
    return_order: world.I64  # index into the chunk's orders
    return_at: world.I64
    return_line: world.I64  # -1: the whole order (its lines); -2: a share by amount; else a line
    return_amount: world.I64


def chunk_intents(
    params: world.WorldParams, members: world.Members, batch: world.PurchaseBatch
) -> Intents:
    """The redemptions and returns that follow the chunk's orders (see the module doc)."""
    end = params.days * _DAY  # nothing after the world's last second has happened
    r_member, r_perk, r_at = _redemptions(params, members, batch, end)
    t_order, t_at, t_line, t_amount = _returns(params, batch, end)
    return Intents(r_member, r_perk, r_at, t_order, t_at, t_line, t_amount)


def _redemptions(
    params: world.WorldParams, members: world.Members, batch: world.PurchaseBatch, end: int
) -> tuple[world.I64, world.I64, world.I64]:
    rng = world._rng(params, _REDEMPTIONS, batch.chunk)
    low, high = params.chunk_range(batch.chunk)
    n = len(batch)
    redeemer = (rng.random(high - low) < REDEEMER_SHARE).tolist()
    # Drawn for every order whatever happens, so one member's choices never shift another's:
    # the perk each order's points could go to (a category by the member's tastes, a perk of
    # it), and how long the member waits before asking.
    cdf = np.cumsum(members.tastes[batch.member], axis=1)
    u = rng.random((n, WISHES_PER_ORDER)) * cdf[:, -1:]
    category = np.minimum((cdf[:, None, :] < u[:, :, None]).sum(axis=2), len(CATEGORIES) - 1)
    pick = (rng.random((n, WISHES_PER_ORDER)) * _PERK_COUNT[category]).astype(np.int64)
    # Flat lists (order k's draws at k * WISHES_PER_ORDER + draw): a list per order would
    # cost far more to make than to use.
    wished = _PERK_ORDER[_PERK_START[category] + pick].ravel().tolist()
    delay = (
        (rng.exponential(MEAN_DELAY_DAYS, n * WISHES_PER_ORDER) * _DAY).astype(np.int64).tolist()
    )

    member_of = batch.member.tolist()
    at_of = batch.at.tolist()
    amount_of = batch.amount_minor.tolist()
    out_member: list[int] = []
    out_perk: list[int] = []
    out_at: list[int] = []
    k = 0
    while k < n:
        member = member_of[k]
        first = k
        while k < n and member_of[k] == member:
            k += 1
        if not redeemer[member - low]:
            continue
        balance = 0
        used = [0] * len(PERKS)
        year_spend = 0  # of the member's orders in the year before `ready`
        oldest = first
        wish: int | None = None  # the perk the member saves for
        for order in range(first, k):
            balance += amount_of[order] // _MINOR_PER_UNIT * _DEMO.points_per_unit
            ready = at_of[order] + _PENDING_SECONDS  # the order's points are spendable
            year_spend += amount_of[order]
            while at_of[oldest] <= ready - _YEAR:
                year_spend -= amount_of[oldest]
                oldest += 1
            for draw in range(order * WISHES_PER_ORDER, (order + 1) * WISHES_PER_ORDER):
                perk = wished[draw] if wish is None else wish
                spec = PERKS[perk]
                if (spec.min_rank and year_spend < _RANK_THRESHOLD.get(spec.min_rank, 0)) or (
                    spec.per_member_limit is not None and used[perk] >= spec.per_member_limit
                ):
                    wish = None  # they know their tier and their past: no use asking
                    break
                if balance < spec.cost_points:
                    wish = perk  # saving for it
                    break
                at = ready + delay[draw]
                if at >= end:
                    break
                wish = None
                balance -= spec.cost_points
                used[perk] += 1
                out_member.append(member)
                out_perk.append(perk)
                out_at.append(at)
    member_array = np.asarray(out_member, dtype=np.int64)
    perk_array = np.asarray(out_perk, dtype=np.int64)
    at_array = np.asarray(out_at, dtype=np.int64)
    by_time = np.lexsort((at_array, member_array))
    return member_array[by_time], perk_array[by_time], at_array[by_time]


def _returns(
    params: world.WorldParams, batch: world.PurchaseBatch, end: int
) -> tuple[world.I64, world.I64, world.I64, world.I64]:
    rng = world._rng(params, _RETURNS, batch.chunk)
    n = len(batch)
    back = rng.random(n) < RETURN_SHARE
    delay = rng.integers(3_600, RETURN_DAYS * _DAY, n)
    whole = rng.random(n) < WHOLE_RETURN_SHARE
    u_line = rng.random(n)
    share = rng.uniform(0.2, 0.8, n)
    at = batch.at + delay
    chosen = np.flatnonzero(back & (at < end))
    starts = batch.line_start[chosen]
    lines = batch.line_start[chosen + 1] - starts
    amount = batch.amount_minor[chosen]
    line = np.where(
        whole[chosen],
        -1,
        np.where(lines > 1, starts + (u_line[chosen] * lines).astype(np.int64), -2),
    ).astype(np.int64)
    returned = np.where(
        line == -1,
        amount,
        np.where(
            line == -2,
            np.maximum(1, (amount * share[chosen]).astype(np.int64)),
            batch.line_amount_minor[np.maximum(line, 0)],
        ),
    ).astype(np.int64)
    return chosen.astype(np.int64), at[chosen], line, returned


# --- As rewards' history loader takes them --------------------------------------------------


def historic_redemptions(
    params: world.WorldParams,
    plan: Intents,
    member_ids: Sequence[uuid.UUID],
    perks: Sequence[uuid.UUID | None],
    chunk: int,
) -> list[HistoricRedemption]:
    """The chunk's redemptions for `load_history` (`member_ids[k]`: member `low + k`; `perks`:
    the brand's id of each of `PERKS`, None to leave that perk's out). Keys are the member's
    external id and the redemption's rank among theirs."""
    low, _ = params.chunk_range(chunk)
    start = params.start_at
    found = []
    rank = 0
    previous = -1
    for member, perk, at in zip(
        plan.redemption_member.tolist(),
        plan.redemption_perk.tolist(),
        plan.redemption_at.tolist(),
        strict=True,
    ):
        rank = rank + 1 if member == previous else 1
        previous = member
        perk_id = perks[perk]
        if perk_id is None:
            continue
        found.append(
            HistoricRedemption(
                member_id=member_ids[member - low],
                perk_id=perk_id,
                occurred_at=start + timedelta(seconds=at),
                key=f"{world.external_id(params.seed, member)}-p{rank:03d}",
            )
        )
    return found


def historic_returns(
    params: world.WorldParams,
    plan: Intents,
    batch: world.PurchaseBatch,
    catalog: world.Catalog,
) -> list[HistoricReturn]:
    """The chunk's returns for `load_history`: the return id is the order id and `-R1`."""
    start = params.start_at
    skus = catalog.sku.tolist()
    line_sku = batch.sku.tolist()
    line_category = batch.category.tolist()
    line_quantity = batch.quantity.tolist()
    line_amount = batch.line_amount_minor.tolist()
    bounds = batch.line_start.tolist()

    def line_of(j: int) -> HistoricLine:
        return HistoricLine(
            sku=skus[line_sku[j]],
            category=CATEGORIES[line_category[j]],
            quantity=line_quantity[j],
            amount_minor=line_amount[j],
        )

    found = []
    for order, at, line, amount in zip(
        plan.return_order.tolist(),
        plan.return_at.tolist(),
        plan.return_line.tolist(),
        plan.return_amount.tolist(),
        strict=True,
    ):
        member = int(batch.member[order])
        order_name = order_id(params.seed, member, int(batch.ordinal[order]))
        if line == -1:
            lines = tuple(line_of(j) for j in range(bounds[order], bounds[order + 1]))
        elif line >= 0:
            lines = (line_of(line),)
        else:
            lines = ()
        found.append(
            HistoricReturn(
                order_id=order_name,
                return_id=f"{order_name}-R1",
                occurred_at=start + timedelta(seconds=at),
                amount_minor=None if lines else amount,
                lines=lines,
            )
        )
    return found
