"""A deterministic model of a beauty brand's members, purchases and community, in numpy arrays.

Everything follows from `WorldParams` (a seed among them): the same parameters give the same
arrays, bit for bit, whichever machine or order the chunks are made in. Each random stream has a
`SeedSequence` of its own, keyed by (seed, stream, chunk), so generating chunk 7 alone (a resumed
run) gives exactly what a full run gives for it.

The model, in short:
- Members join over the D days: a wave early on (an exponential with a mean of
  `early_join_days`) and a steady trickle (uniform). Member index = join order, so a chunk of
  indexes is a slice of the join timeline; external ids are `s<seed>-<index>`.
- Each has hidden tastes (a Dirichlet mix over the categories, centred on their popularity),
  a price sensitivity in [0, 1] (Beta), and a purchase rate (orders per year, lognormal: spend
  is heavy-tailed, so tiers fill like a real program's).
- A share churns: after a churn day their rates decay exponentially.
- Seasonal campaign weeks (fixed calendar dates) lift everybody's purchase rate.
- Orders are a thinned Poisson process: candidates at the peak rate, each kept with
  probability (that day's lift / peak lift) x (churn decay).
- Lines pick a category from the member's tastes and a sku within it: cheaper skus for the
  price-sensitive, each sku with an appeal of its own (a few hero products sell most).
- The community: a few hundred members per million post daily, a few percent post now and
  then; posts get reactions and comments from readers whose tastes match the post's category.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from services.community.posts.events import ReactionKind
from services.demo.members import CATEGORIES, CONCERNS, FIRST_NAMES, LAST_NAMES, SKIN_TYPES
from services.demo.members import TIME_ZONES as PLACES
from services.demo.rewards import SKUS as HERO_SKUS

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I16 = npt.NDArray[np.int16]
I8 = npt.NDArray[np.int8]
U8 = npt.NDArray[np.uint8]
Bools = npt.NDArray[np.bool_]

SECONDS_PER_DAY = 86_400
NO_CHURN = -1  # churn_day of a member who does not churn within the simulated days

# Share of the catalog and of tastes per category (in CATEGORIES order): what a beauty retailer
# sells most. Tastes are Dirichlet around these, so the average member follows the market.
CATEGORY_SHARE = (0.30, 0.26, 0.16, 0.12, 0.09, 0.07)
# Median price (EUR) per category; prices are lognormal around it.
CATEGORY_MEDIAN_PRICE = (42.0, 26.0, 78.0, 22.0, 16.0, 20.0)
PRICE_SIGMA = 0.45
# When people shop (UTC hour of the day): quiet at night, a lunch bump and an evening peak.
HOUR_WEIGHTS = (
    1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 7, 6, 6, 6, 7, 8, 9, 9, 8, 5, 2,
)  # fmt: skip
# Price sensitivity is cut into this many levels, each with its own sku distribution.
_SENSITIVITY_LEVELS = 8
# How strongly price-sensitive members avoid expensive skus: weight ~ price ** (-beta * s).
_PRICE_AVERSION = 2.5
_REACTION_WEIGHTS = {
    ReactionKind.LOVE: 0.45,
    ReactionKind.HELPFUL: 0.25,
    ReactionKind.WOW: 0.12,
    ReactionKind.HAHA: 0.05,
    ReactionKind.SUPPORT: 0.13,
}
REACTION_KINDS = tuple(_REACTION_WEIGHTS)  # a reaction's `kind` indexes this

# Random streams: each array family draws from its own, so adding one never shifts another.
_MEMBERS, _CATALOG, _PURCHASES, _POSTS, _RESPONSES = range(5)


@dataclass(frozen=True, slots=True)
class SeasonalCampaign:
    """A campaign week on fixed calendar dates: it lifts purchase rates, and rewards runs it as
    a points multiplier on one category."""

    name: str
    month: int
    day: int
    days: int
    lift: float  # purchase rate multiplier while it runs
    category: str
    points_multiplier: str = "2"


CAMPAIGNS = (
    SeasonalCampaign("Valentine's fragrance week", 2, 7, 8, 1.5, "fragrance"),
    SeasonalCampaign("Spring savings event", 4, 12, 10, 2.0, "skincare"),
    SeasonalCampaign("Mother's Day gifts", 5, 3, 8, 1.4, "bath"),
    SeasonalCampaign("Summer glow week", 6, 20, 7, 1.3, "makeup"),
    SeasonalCampaign("Autumn hair week", 9, 22, 7, 1.3, "hair"),
    SeasonalCampaign("Black Friday", 11, 24, 5, 2.6, "makeup"),
    SeasonalCampaign("Holiday gifting", 12, 1, 21, 1.6, "fragrance"),
)


@dataclass(frozen=True, slots=True)
class WorldParams:
    members: int
    days: int
    seed: int
    start: date  # day 0 begins at this date's UTC midnight
    # Members per purchase chunk. Part of the world's identity: chunks have their own streams.
    chunk_members: int = 20_000
    early_join_share: float = 0.55
    early_join_days: float = 40.0
    taste_concentration: float = 1.5  # Dirichlet total: low = a few strong favourites
    orders_per_year_median: float = 2.2
    orders_per_year_sigma: float = 1.05
    max_orders_per_year: float = 120.0  # caps the lognormal's far tail (resellers aside)
    churn_share: float = 0.35
    churn_decay_days: float = 21.0
    skus: int = 400
    daily_posters_per_million: int = 300
    daily_posts_median: float = 1.4
    occasional_poster_share: float = 0.05
    occasional_posts_per_year: float = 3.0
    reader_share: float = 0.25  # members who react and comment at all
    reactions_per_post: float = 6.0
    comments_per_post: float = 1.2

    def __post_init__(self) -> None:
        if self.members < 1 or self.days < 1 or self.chunk_members < 1:
            raise ValueError("a world needs at least one member, one day and one member a chunk")

    @property
    def chunks(self) -> int:
        return -(-self.members // self.chunk_members)

    def chunk_range(self, chunk: int) -> tuple[int, int]:
        low = chunk * self.chunk_members
        return low, min(low + self.chunk_members, self.members)

    @property
    def start_at(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["start"] = self.start.isoformat()
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> WorldParams:
        known = {f.name for f in fields(cls)}
        args = {k: v for k, v in values.items() if k in known}
        args["start"] = date.fromisoformat(args["start"])
        return cls(**args)


def _rng(params: WorldParams, stream: int, chunk: int = 0) -> np.random.Generator:
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([params.seed, stream, chunk]))
    )


def external_id(seed: int, index: int) -> str:
    return f"s{seed}-{index:07d}"


@dataclass(frozen=True, slots=True)
class Catalog:
    """Skus sorted by category then price; the demo's named skus come first in their category."""

    sku: npt.NDArray[np.str_]
    category: I8
    price_minor: I64
    appeal: F64  # relative popularity at equal price
    # sku_cdf[level] is a cumulative distribution over all skus, in blocks per category, each
    # block offset by its category index: `searchsorted(sku_cdf[level], category + u)` picks a
    # sku of that category for a member of that sensitivity level.
    sku_cdf: F64 = field(repr=False)


def make_catalog(params: WorldParams) -> Catalog:
    rng = _rng(params, _CATALOG)
    shares = np.asarray(CATEGORY_SHARE)
    counts = np.maximum(np.round(shares * params.skus).astype(np.int64), 2)
    names: list[str] = []
    categories: list[I8] = []
    prices: list[I64] = []
    for c, name in enumerate(CATEGORIES):
        n = int(max(counts[c], len(HERO_SKUS[name])))
        euros = CATEGORY_MEDIAN_PRICE[c] * np.exp(PRICE_SIGMA * rng.standard_normal(n))
        price = np.sort(np.maximum(np.round(euros), 3).astype(np.int64) * 100)
        heroes = list(HERO_SKUS[name])
        # The demo's skus (an earning rule names one) are spread over the price range.
        hero_slots = set(np.linspace(0, n - 1, len(heroes) + 2)[1:-1].round().astype(int))
        generated = iter(f"SKU-{name[:4].upper()}-{k:03d}" for k in range(1, n + 1))
        hero_names = iter(heroes)
        names += [next(hero_names) if k in hero_slots else next(generated) for k in range(n)]
        categories.append(np.full(n, c, dtype=np.int8))
        prices.append(price)
    category = np.concatenate(categories)
    price_minor = np.concatenate(prices)
    # Zipf-like appeal in a random order: a few heroes per category outsell the rest.
    appeal = 1.0 / (1.0 + rng.permutation(len(category)).astype(np.float64)) ** 0.6
    levels = (np.arange(_SENSITIVITY_LEVELS) + 0.5) / _SENSITIVITY_LEVELS
    relative_price = price_minor / np.asarray(CATEGORY_MEDIAN_PRICE)[category] / 100
    cdfs = []
    for s in levels:
        weight = appeal * relative_price ** (-_PRICE_AVERSION * s)
        cdf = np.empty_like(weight)
        for c in range(len(CATEGORIES)):
            block = category == c
            cumulative = np.cumsum(weight[block])
            cdf[block] = c + cumulative / cumulative[-1]
        cdfs.append(cdf)
    return Catalog(
        sku=np.asarray(names),
        category=category,
        price_minor=price_minor,
        appeal=appeal,
        sku_cdf=np.stack(cdfs),
    )


def lift_by_day(params: WorldParams) -> F64:
    """Each simulated day's purchase rate multiplier (1 outside campaign weeks)."""
    lift = np.ones(params.days)
    for window in campaign_windows(params):
        lift[window.first_day : window.last_day + 1] = np.maximum(
            lift[window.first_day : window.last_day + 1], window.campaign.lift
        )
    return lift


@dataclass(frozen=True, slots=True)
class CampaignWindow:
    campaign: SeasonalCampaign
    first_day: int  # day indexes within the world, inclusive
    last_day: int

    def starts_at(self, params: WorldParams) -> datetime:
        return params.start_at + timedelta(days=self.first_day)

    def ends_at(self, params: WorldParams) -> datetime:
        return params.start_at + timedelta(days=self.last_day + 1)


def campaign_windows(params: WorldParams) -> list[CampaignWindow]:
    """The campaign weeks that fall (at least partly) within the simulated days, in order."""
    windows = []
    end = params.start + timedelta(days=params.days)
    for year in range(params.start.year, end.year + 1):
        for campaign in CAMPAIGNS:
            first = date(year, campaign.month, campaign.day)
            last = first + timedelta(days=campaign.days - 1)
            if last < params.start or first >= end:
                continue
            first_day = max((first - params.start).days, 0)
            last_day = min((last - params.start).days, params.days - 1)
            windows.append(CampaignWindow(campaign, first_day, last_day))
    return sorted(windows, key=lambda w: w.first_day)


@dataclass(frozen=True, slots=True)
class Members:
    """One row per member, in join order (index i has external id `external_id(seed, i)`)."""

    join_day: I32
    tastes: F64  # (members, categories), rows sum to 1
    price_sensitivity: F64
    orders_per_year: F64
    churn_day: I32  # NO_CHURN for members who stay
    posts_per_day: F64  # 0 for most; the daily posters' is around 1
    reader: Bools  # reacts to and comments on others' posts
    # Profile, as indexes into the demo's lists (services.demo.members).
    first_name: U8
    last_name: U8
    place: U8
    skin_type: U8
    concerns: U8  # bit k set: CONCERNS[k]
    birthday: I32  # proleptic Gregorian ordinal (date.fromordinal)


def make_members(params: WorldParams) -> Members:
    rng = _rng(params, _MEMBERS)
    n, days = params.members, params.days
    early = rng.random(n) < params.early_join_share
    wave = np.minimum(rng.exponential(params.early_join_days, n), days - 1)
    trickle = rng.random(n) * days
    join_day = np.sort(np.where(early, wave, trickle).astype(np.int32))
    tastes = rng.dirichlet(np.asarray(CATEGORY_SHARE) * params.taste_concentration, n)
    sensitivity = rng.beta(2.0, 2.0, n)
    rate = params.orders_per_year_median * np.exp(
        params.orders_per_year_sigma * rng.standard_normal(n)
    )
    rate = np.minimum(rate, params.max_orders_per_year)
    churns = rng.random(n) < params.churn_share
    churn_at = join_day + (rng.random(n) * days).astype(np.int32)
    churn_day = np.where(churns & (churn_at < days), churn_at, NO_CHURN).astype(np.int32)
    # The daily posters: members from the first third of the days, who never churn.
    posters = max(1, round(n * params.daily_posters_per_million / 1_000_000))
    posts_per_day = np.zeros(n)
    occasional = rng.random(n) < params.occasional_poster_share
    posts_per_day[occasional] = (
        params.occasional_posts_per_year / 365 * rng.lognormal(0.0, 0.8, int(occasional.sum()))
    )
    early_members = np.flatnonzero(join_day < max(days // 3, 1))
    daily = rng.choice(early_members, size=min(posters, len(early_members)), replace=False)
    posts_per_day[daily] = params.daily_posts_median * rng.lognormal(0.0, 0.4, len(daily))
    churn_day[daily] = NO_CHURN
    reader = rng.random(n) < params.reader_share
    reader[daily] = True
    first_birthday = date(1960, 1, 1).toordinal()
    birthday = first_birthday + rng.integers(0, date(2006, 12, 31).toordinal() - first_birthday, n)
    return Members(
        join_day=join_day,
        tastes=tastes,
        price_sensitivity=sensitivity,
        orders_per_year=rate,
        churn_day=churn_day,
        posts_per_day=posts_per_day,
        reader=reader,
        first_name=rng.integers(0, len(FIRST_NAMES), n, dtype=np.uint8),
        last_name=rng.integers(0, len(LAST_NAMES), n, dtype=np.uint8),
        place=rng.integers(0, len(PLACES), n, dtype=np.uint8),
        skin_type=rng.integers(0, len(SKIN_TYPES), n, dtype=np.uint8),
        # One to three concerns: each of seven bits, then the first one forced if none is set.
        concerns=_concern_bits(rng, n),
        birthday=birthday.astype(np.int32),
    )


def _concern_bits(rng: np.random.Generator, n: int) -> U8:
    bits = rng.random((n, len(CONCERNS))) < 0.25
    bits[~bits.any(axis=1), 0] = True
    weights = (1 << np.arange(len(CONCERNS))).astype(np.uint8)
    concerns: U8 = (bits * weights).sum(axis=1).astype(np.uint8)
    return concerns


@dataclass(frozen=True, slots=True)
class PurchaseBatch:
    """One chunk's orders, sorted by member then time, with their lines (columnar).

    Order k's lines are `line_start[k]:line_start[k + 1]` of the line arrays.
    """

    chunk: int
    member: I64  # member index
    ordinal: I32  # the member's n-th order (1-based): order ids are external id + ordinal
    at: I64  # seconds since the world's start
    amount_minor: I64
    line_start: I64  # len(orders) + 1
    sku: I32  # index into the catalog
    category: I8
    quantity: I16
    line_amount_minor: I64

    def __len__(self) -> int:
        return len(self.member)


def _active_span(params: WorldParams, join_day: I32) -> F64:
    return (params.days - join_day).astype(np.float64)


def _thinned_times(
    rng: np.random.Generator,
    rate_per_day: F64,
    join_day: I32,
    churn_day: I32,
    params: WorldParams,
    lift: F64 | None,
) -> tuple[I64, F64]:
    """Event times (in days) of an inhomogeneous Poisson process per member, by thinning:
    candidates at the peak rate over each member's active span, each kept with probability
    (that day's lift / peak) x (the churn decay). Returns (local member index, time)."""
    peak = float(lift.max()) if lift is not None else 1.0
    span = _active_span(params, join_day)
    candidates = rng.poisson(rate_per_day * peak * span)
    owner = np.repeat(np.arange(len(span)), candidates)
    t = join_day[owner] + rng.random(len(owner)) * span[owner]
    keep_p = np.ones(len(owner)) if lift is None else lift[t.astype(np.int64)] / peak
    churn = churn_day[owner]
    churned = (churn != NO_CHURN) & (t > churn)
    keep_p[churned] *= np.exp(-(t[churned] - churn[churned]) / params.churn_decay_days)
    kept = rng.random(len(owner)) < keep_p
    return owner[kept], t[kept]


def _seconds(rng: np.random.Generator, t: F64) -> I64:
    """A time in days as seconds since the start, with the hour redrawn from HOUR_WEIGHTS."""
    weights = np.asarray(HOUR_WEIGHTS, dtype=np.float64)
    hour = rng.choice(24, size=len(t), p=weights / weights.sum())
    within = rng.integers(0, 3600, len(t))
    return np.floor(t).astype(np.int64) * SECONDS_PER_DAY + hour * 3600 + within


def _sorted_by_owner(owner: I64, at: I64) -> I64:
    return np.lexsort((at, owner))


def _pick_categories(rng: np.random.Generator, tastes: F64) -> I8:
    """One category per row of `tastes` (each row a distribution)."""
    cumulative = np.cumsum(tastes, axis=1)
    u = rng.random(len(tastes)) * cumulative[:, -1]
    picked: I8 = np.minimum((cumulative < u[:, None]).sum(axis=1), len(CATEGORIES) - 1).astype(
        np.int8
    )
    return picked


def purchases(
    params: WorldParams,
    members: Members,
    catalog: Catalog,
    chunk: int,
    lift: F64 | None = None,
) -> PurchaseBatch:
    """The orders of the members of one chunk (see `WorldParams.chunk_range`)."""
    rng = _rng(params, _PURCHASES, chunk)
    low, high = params.chunk_range(chunk)
    lift = lift_by_day(params) if lift is None else lift
    owner, t = _thinned_times(
        rng,
        members.orders_per_year[low:high] / 365.0,
        members.join_day[low:high],
        members.churn_day[low:high],
        params,
        lift,
    )
    at = _seconds(rng, t)
    order = _sorted_by_owner(owner, at)
    owner, at = owner[order], at[order]
    member = owner + low
    first_of_member = np.searchsorted(owner, owner, side="left")
    ordinal = (np.arange(len(owner)) - first_of_member + 1).astype(np.int32)

    sensitivity = members.price_sensitivity[member]
    # Bargain hunters buy fewer lines; 1 to 5 lines an order.
    extra = rng.poisson(0.3 + 0.9 * (1.0 - sensitivity))
    lines_per_order = 1 + np.minimum(extra, 4)
    line_start = np.zeros(len(owner) + 1, dtype=np.int64)
    np.cumsum(lines_per_order, out=line_start[1:])
    line_order = np.repeat(np.arange(len(owner)), lines_per_order)
    line_member = member[line_order]
    category = _pick_categories(rng, members.tastes[line_member])
    level = np.minimum(
        (members.price_sensitivity[line_member] * _SENSITIVITY_LEVELS).astype(np.int64),
        _SENSITIVITY_LEVELS - 1,
    )
    key = category + rng.random(len(line_member))
    sku = np.empty(len(line_member), dtype=np.int32)
    for s in range(_SENSITIVITY_LEVELS):
        rows = level == s
        sku[rows] = np.searchsorted(catalog.sku_cdf[s], key[rows], side="right")
    # Floating point can put u just at a block's top edge: stay inside the category.
    sku = np.minimum(sku, len(catalog.sku) - 1).astype(np.int32)
    quantity = (1 + (rng.random(len(sku)) < 0.12)).astype(np.int16)
    line_amount = quantity.astype(np.int64) * catalog.price_minor[sku]
    amount = (
        np.add.reduceat(line_amount, line_start[:-1]) if len(owner) else np.zeros(0, dtype=np.int64)
    )
    return PurchaseBatch(
        chunk=chunk,
        member=member.astype(np.int64),
        ordinal=ordinal,
        at=at,
        amount_minor=amount.astype(np.int64),
        line_start=line_start,
        sku=sku,
        category=catalog.category[sku],
        quantity=quantity,
        line_amount_minor=line_amount,
    )


def purchase_batches(
    params: WorldParams, members: Members, catalog: Catalog, first_chunk: int = 0
) -> Iterator[PurchaseBatch]:
    lift = lift_by_day(params)
    for chunk in range(first_chunk, params.chunks):
        yield purchases(params, members, catalog, chunk, lift)


@dataclass(frozen=True, slots=True)
class CommunityPlan:
    """What the community does, for a loader to replay: posts, then responses to them.

    Posts are sorted by time; `reaction_post` and `comment_post` index them.
    """

    post_author: I64  # member index
    post_at: I64  # seconds since the start
    post_category: I8  # the post's subject (its tag)
    reaction_post: I64
    reaction_member: I64
    reaction_at: I64
    reaction_kind: U8  # index into REACTION_KINDS
    comment_post: I64
    comment_member: I64
    comment_at: I64


def community(params: WorldParams, members: Members) -> CommunityPlan:
    """Posts, reactions and comments for the whole world (a few per member at most, so one
    pass fits in memory even at a million members)."""
    rng = _rng(params, _POSTS)
    authors = np.flatnonzero(members.posts_per_day > 0)
    owner, t = _thinned_times(
        rng,
        members.posts_per_day[authors],
        members.join_day[authors],
        members.churn_day[authors],
        params,
        None,
    )
    at = _seconds(rng, t)
    order = np.argsort(at, kind="stable")
    author = authors[owner[order]].astype(np.int64)
    post_at = at[order]
    category = _pick_categories(rng, members.tastes[author])

    responses = _rng(params, _RESPONSES)
    weights = np.asarray(list(_REACTION_WEIGHTS.values()))
    r_post, r_member, r_at = _responders(
        responses, params, members, author, post_at, category, params.reactions_per_post
    )
    kind = responses.choice(len(REACTION_KINDS), size=len(r_post), p=weights / weights.sum())
    c_post, c_member, c_at = _responders(
        responses, params, members, author, post_at, category, params.comments_per_post
    )
    return CommunityPlan(
        post_author=author,
        post_at=post_at,
        post_category=category,
        reaction_post=r_post,
        reaction_member=r_member,
        reaction_at=r_at,
        reaction_kind=kind.astype(np.uint8),
        comment_post=c_post,
        comment_member=c_member,
        comment_at=c_at,
    )


def _responders(
    rng: np.random.Generator,
    params: WorldParams,
    members: Members,
    author: I64,
    post_at: I64,
    category: I8,
    per_post: float,
) -> tuple[I64, I64, I64]:
    """Readers who respond to posts: drawn per post from the readers who like its category,
    joined by then and not its author; at most one response per (post, member)."""
    readers = np.flatnonzero(members.reader)
    if len(readers) == 0 or len(author) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    # Daily posters draw a crowd: their posts get twice the responses.
    busy = members.posts_per_day[author] > 0.2
    counts = rng.poisson(per_post * np.where(busy, 2.0, 1.0))
    post = np.repeat(np.arange(len(author)), counts)
    post_category = category[post]
    member = np.empty(len(post), dtype=np.int64)
    for c in range(len(CATEGORIES)):
        rows = post_category == c
        cdf = np.cumsum(members.tastes[readers, c])
        u = rng.random(int(rows.sum())) * cdf[-1]
        member[rows] = readers[np.minimum(np.searchsorted(cdf, u), len(readers) - 1)]
    delay = rng.exponential(6 * 3600, len(post)).astype(np.int64)
    at = np.minimum(post_at[post] + delay, params.days * SECONDS_PER_DAY - 1)
    valid = (members.join_day[member].astype(np.int64) * SECONDS_PER_DAY <= post_at[post]) & (
        member != author[post]
    )
    post, member, at = post[valid], member[valid], at[valid]
    _, first = np.unique(post * params.members + member, return_index=True)
    first.sort()
    return post[first].astype(np.int64), member[first], at[first]


def favourite_categories(tastes_row: F64) -> list[str]:
    """What a member says they like: the categories that make up at least a fifth of their
    tastes (at least their top one), strongest first. Their profile's `interests`."""
    order = np.argsort(-tastes_row, kind="stable")
    chosen = [CATEGORIES[int(c)] for c in order if tastes_row[c] >= 0.2]
    return chosen or [CATEGORIES[int(order[0])]]


def expected_orders(params: WorldParams) -> float:
    """The expected number of orders in the world, from the parameters alone (no churn, an
    upper bound): for sizing a run before generating it."""
    days = params.days
    mean_rate = params.orders_per_year_median * math.exp(params.orders_per_year_sigma**2 / 2)
    # Expected active days: the early wave's E[days - min(X, days)] and the trickle's days / 2.
    scale = params.early_join_days
    wave_span = days - scale * (1 - math.exp(-days / scale))
    span = params.early_join_share * wave_span + (1 - params.early_join_share) * days / 2
    mean_lift = 1.0 + sum((c.lift - 1) * c.days for c in CAMPAIGNS) / 365
    return params.members * min(mean_rate, params.max_orders_per_year) / 365 * span * mean_lift
