"""The perks catalog, redemptions and birthday gifts. Functions here never commit.

**Catalog.** Staff keep perks: cost in points (> 0), the tiers that may redeem (empty: everyone;
unknown tier ids are refused), a validity window, an inventory (null: unlimited) whose
`inventory_remaining` always equals `inventory_total` minus the redemptions that hold a unit (the
completed ones), a per-member limit (counting completed redemptions; cancelled ones give the slot
back), a kind and its fulfilment settings (kept as given, for the brand's fulfilment webhook).
A `discount_code` perk hands out codes from its pool (`POST /perks/{id}/codes`): its stock is
whichever runs out first, the inventory or the pool. A perk used by a drop is *drop-only*: it is
won in the drop, never redeemed directly. A birthday perk is granted, never redeemed. Creating,
changing and deleting a perk emit `perk.updated` in the same transaction, with the perk's whole
catalog view (a deleted perk's with `active` false); stock moved by redemptions is told by
`perk.redeemed` and `perk.redemption_cancelled`.

**Redeeming** (one path for members, staff, drop winners and birthday gifts) checks, in this
order, and the member's view of the catalog reports the first failing rule the same way:

1. the perk exists in the brand and is active (`PerkNotFound`, 404);
2. the member exists (`MemberNotFound`, 404) and is not suspended (`MemberSuspended`, 403);
3. for direct redemptions only: not a birthday perk (`BirthdayGiftOnly`, 409), not drop-only
   (`DropOnly`, 409), open now: `valid_from <= now < valid_until` (`PerkNotAvailable`, 409, with
   the dates);
4. the member's tier is one the perk allows (`TierNotEligible`, 403);
5. under the member's account lock (`lock_account`, so one member's redemptions run one at a
   time): fewer completed redemptions than the per-member limit (`RedemptionLimitReached`, 409;
   not applied to birthday gifts, which are once a year), stock left (`OutOfStock`, 409), enough
   available points (`InsufficientPoints`, 409);
6. then the writes: one unit taken by a conditional `UPDATE ... WHERE inventory_remaining > 0`
   (the authority on stock when members race: it can never oversell), a code taken from the pool
   with `FOR UPDATE SKIP LOCKED` (an empty pool is `OutOfStock`), the redemption row, the points
   debited by `ledger.post()` (kind REDEEM; its conditional UPDATE refuses to overdraw), and
   `perk.redeemed` (the ledger adds `points.redeemed`).

Any refusal raises, and the caller's transaction (or the draw's savepoint) rolls back every write
made so far, so nothing is half done. Locks are always taken account first, then the perk row,
then a code, which keeps concurrent redemptions, cancellations and draws free of deadlocks.

**Codes** are revealed at once to whoever redeems (the member, or staff on their behalf). A code
handed out by a draw or a birthday gift stays hidden until the member reveals it
(`POST /me/redemptions/{id}/reveal`).

**Cancelling** refunds the points (kind REFUND, through `post()`), gives the unit back and emits
`perk.redemption_cancelled`. The code goes back to the pool only if it was never revealed (a
revealed code may already be in use at a till, so it is retired). Cancelling a cancelled
redemption returns it unchanged. Staff (rewards:write) may cancel any redemption. A member may
cancel their own within `MEMBER_CANCEL_WINDOW` (15 minutes) of redeeming it, if it cost points,
did not come from a drop, and has no revealed code (`NotCancellable`, 409, otherwise). A cancelled
birthday gift is not granted again that year; a cancelled drop win does not re-run the draw.

**Birthday gifts.** A daily job grants, to every active member with a birthday in the current
month (UTC) who has no gift for the year yet (`birthday_gifts`: one per member and year), the most
valuable (highest `cost_points`, then oldest) active, open birthday perk their tier allows that
still has stock, as a redemption that costs 0 points. Members without a birthday, erased or
suspended get nothing; if no perk fits today the job tries again tomorrow.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import groupby
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.errors import KinfolkError, ValidationFailed
from services.kernel.ids import new_id
from services.kernel.pagination import Page, PageRequest, encode_cursor
from services.rewards.errors import (
    BirthdayGiftOnly,
    DropOnly,
    InsufficientPoints,
    InventoryTooLow,
    MemberNotFound,
    MemberSuspended,
    NotCancellable,
    OutOfStock,
    PerkInUse,
    PerkKindMismatch,
    PerkNotAvailable,
    PerkNotFound,
    RedemptionLimitReached,
    RedemptionNotFound,
    TierNotEligible,
    UnknownTier,
)
from services.rewards.events import (
    PerkCatalogData,
    PerkRedeemed,
    PerkRedemptionCancelled,
    PerkUpdated,
    RedemptionData,
)
from services.rewards.job_runs import RunLimit, in_batches, itself
from services.rewards.ledger.members import MemberSource
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.ledger.service import Movement, account_for, post, program_for
from services.rewards.models import (
    OUTBOX,
    Account,
    BirthdayGift,
    Bucket,
    EntryKind,
    Perk,
    PerkKind,
    Redemption,
    RedemptionStatus,
)
from services.rewards.perks.repository import (
    OfferFilters,
    PerkFilters,
    PerkRepository,
    PerkState,
)
from services.rewards.perks.schemas import (
    CodesReport,
    CodesUpload,
    PerkCreate,
    PerkOffer,
    PerkUpdate,
)

MEMBER_CANCEL_WINDOW = timedelta(minutes=15)

# How many perks the member's catalog view examines per query while filling a page.
_OFFER_BATCH = 200
# Members the birthday job takes a batch at a time.
BIRTHDAY_BATCH_SIZE = 500


class Channel(StrEnum):
    """Who a redemption is made through: the checks differ slightly (see the module doc)."""

    MEMBER = "member"
    STAFF = "staff"
    DROP = "drop"
    BIRTHDAY = "birthday"


_DIRECT = frozenset({Channel.MEMBER, Channel.STAFF})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- Catalog --------------------------------------------------------------------------------


async def _check_tiers(
    perks: PerkRepository, brand_id: uuid.UUID, tier_ids: Sequence[uuid.UUID], field: str
) -> None:
    known = await perks.known_tiers(brand_id, tier_ids)
    unknown = [t for t in tier_ids if t not in known]
    if unknown:
        raise UnknownTier(
            [
                {
                    "loc": ["body", field],
                    "msg": f"unknown tier ids: {', '.join(map(str, unknown))}; "
                    "use ids from GET /rewards/v1/tiers",
                    "type": "unknown_tier",
                }
            ]
        )


def perk_updated_event(perk: Perk, now: datetime, *, active: bool | None = None) -> PerkUpdated:
    """`perk.updated`: the perk as it is after a change (`active` overrides the row's, for a
    deleted perk)."""
    return PerkUpdated(
        brand_id=perk.brand_id,
        occurred_at=now,
        data=PerkCatalogData(
            perk_id=perk.id,
            name=perk.name,
            description=perk.description,
            category=perk.category,
            tags=list(perk.tags),
            kind=perk.kind,
            cost_points=perk.cost_points,
            tier_ids=list(perk.tier_ids),
            valid_from=perk.valid_from,
            valid_until=perk.valid_until,
            inventory_remaining=perk.inventory_remaining,
            per_member_limit=perk.per_member_limit,
            is_birthday_gift=perk.is_birthday_gift,
            active=perk.active if active is None else active,
        ),
    )


async def create_perk(
    session: AsyncSession, brand_id: uuid.UUID, payload: PerkCreate, now: datetime | None = None
) -> Perk:
    now = now or utcnow()
    perks = PerkRepository(session)
    await _check_tiers(perks, brand_id, payload.tier_ids, "tier_ids")
    values = payload.model_dump(mode="python")
    values["image_url"] = str(payload.image_url) if payload.image_url is not None else None
    perk = Perk(
        id=new_id(),
        brand_id=brand_id,
        inventory_remaining=payload.inventory_total,
        created_at=now,
        **values,
    )
    await perks.add(perk)
    await OUTBOX.add(session, perk_updated_event(perk, now))
    return perk


async def get_perk(session: AsyncSession, brand_id: uuid.UUID, perk_id: uuid.UUID) -> Perk:
    """A perk of the brand, active or not (staff view)."""
    perk = await PerkRepository(session).get(brand_id, perk_id)
    if perk is None:
        raise PerkNotFound(f"No perk {perk_id} in this brand.")
    return perk


async def list_perks(
    session: AsyncSession, brand_id: uuid.UUID, filters: PerkFilters, page: PageRequest
) -> Sequence[Perk]:
    return await PerkRepository(session).page(brand_id, filters, page)


def _invalid(field: str, message: str) -> list[dict[str, Any]]:
    return [{"loc": ["body", field], "msg": message, "type": "value_error"}]


async def update_perk(
    session: AsyncSession, brand_id: uuid.UUID, perk_id: uuid.UUID, payload: PerkUpdate
) -> Perk:
    """Applies the fields sent. The perk row is locked, so inventory changes and redemptions
    never interleave: the remaining count is recomputed from the units redemptions hold."""
    perks = PerkRepository(session)
    perk = await perks.get(brand_id, perk_id, for_update=True)
    if perk is None:
        raise PerkNotFound(f"No perk {perk_id} in this brand.")
    sent = payload.model_fields_set
    if "tier_ids" in sent and payload.tier_ids is not None:
        await _check_tiers(perks, brand_id, payload.tier_ids, "tier_ids")
    valid_from = payload.valid_from if "valid_from" in sent else perk.valid_from
    valid_until = payload.valid_until if "valid_until" in sent else perk.valid_until
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise ValidationFailed(_invalid("valid_until", "must be after valid_from"))
    if "inventory_total" in sent:
        total = payload.inventory_total
        remaining: int | None = None
        if total is not None:
            held = await perks.outstanding(perk.id)
            if total < held:
                raise InventoryTooLow(
                    _invalid(
                        "inventory_total",
                        f"{held} units are already redeemed; the total must be at least that",
                    )
                )
            remaining = total - held
        await perks.set_inventory(perk.id, total, remaining)
        perk.inventory_total, perk.inventory_remaining = total, remaining
    for field in sent - {"inventory_total"}:
        value = getattr(payload, field)
        if field == "image_url" and value is not None:
            value = str(value)
        setattr(perk, field, value)
    await session.flush()
    await OUTBOX.add(session, perk_updated_event(perk, utcnow()))
    return perk


async def delete_perk(session: AsyncSession, brand_id: uuid.UUID, perk_id: uuid.UUID) -> None:
    perks = PerkRepository(session)
    perk = await perks.get(brand_id, perk_id, for_update=True)
    if perk is None:
        raise PerkNotFound(f"No perk {perk_id} in this brand.")
    # Built before the row goes: the deleted perk's last view, no longer active.
    withdrawn = perk_updated_event(perk, utcnow(), active=False)
    if not await perks.delete_if_unused(perk):
        raise PerkInUse(
            "This perk has redemptions, codes or drops, so it stays for the record: "
            'deactivate it with PATCH {"active": false} instead.'
        )
    await OUTBOX.add(session, withdrawn)


async def upload_codes(
    session: AsyncSession, brand_id: uuid.UUID, perk_id: uuid.UUID, payload: CodesUpload
) -> CodesReport:
    """Adds codes to a discount perk's pool; codes it already has (or sent twice) are ignored."""
    perks = PerkRepository(session)
    perk = await perks.get(brand_id, perk_id, keep=True)
    if perk is None:
        raise PerkNotFound(f"No perk {perk_id} in this brand.")
    if perk.kind is not PerkKind.DISCOUNT_CODE:
        raise PerkKindMismatch(
            f"Codes go only to discount_code perks; this perk is {perk.kind.value}."
        )
    unique = list(dict.fromkeys(payload.codes))
    added = await perks.add_codes(brand_id, perk.id, [(new_id(), code) for code in unique])
    total, available = await perks.code_counts(perk.id)
    return CodesReport(
        added=added, duplicates=len(payload.codes) - added, total=total, available=available
    )


# --- The rules of redeeming -----------------------------------------------------------------


def check_active(account: Account) -> None:
    check_status(account.member_status)


def check_status(member_status: str) -> None:
    if member_status == "suspended":
        raise MemberSuspended("This member is suspended; they can redeem again once reactivated.")


def check_offer(perk: Perk, *, drop_only: bool, now: datetime) -> None:
    """Whether the perk can be redeemed directly at `now`, whoever asks."""
    if perk.is_birthday_gift:
        raise BirthdayGiftOnly(
            "This perk is a birthday gift: it is granted automatically in the member's "
            "birthday month, never redeemed."
        )
    if drop_only:
        raise DropOnly(
            "This perk is offered only through its drop: enter the drop with "
            "POST /rewards/v1/me/drops/{id}/entries."
        )
    window = {"valid_from": _iso(perk.valid_from), "valid_until": _iso(perk.valid_until)}
    if perk.valid_from is not None and now < perk.valid_from:
        raise PerkNotAvailable(
            {"message": f"This perk opens at {perk.valid_from.isoformat()}.", **window}
        )
    if perk.valid_until is not None and now >= perk.valid_until:
        raise PerkNotAvailable(
            {"message": f"This perk expired at {perk.valid_until.isoformat()}.", **window}
        )


def check_tier(perk: Perk, tier_id: uuid.UUID | None, names: dict[uuid.UUID, str]) -> None:
    """Whether a member of tier `tier_id` (None: no tier yet) may redeem the perk."""
    if not perk.tier_ids or tier_id in perk.tier_ids:
        return
    allowed = ", ".join(sorted(names.get(t, str(t)) for t in perk.tier_ids))
    current = names.get(tier_id) if tier_id is not None else None
    raise TierNotEligible(
        f"Only members of these tiers may redeem this perk: {allowed}; "
        + (f"the member's tier is {current}." if current else "the member has no tier yet.")
    )


def check_member(
    perk: Perk,
    *,
    available: int,
    used: int,
    cost: int,
    codes_available: int | None,
    channel: Channel,
) -> None:
    """Limit, stock and balance (`available` points): checked under the member's lock when
    redeeming."""
    limit = perk.per_member_limit
    if channel is not Channel.BIRTHDAY and limit is not None and used >= limit:
        raise RedemptionLimitReached(
            f"This perk allows {limit} redemption{'s' if limit != 1 else ''} per member; "
            f"the member has {used}."
        )
    if perk.inventory_remaining == 0 or codes_available == 0:
        raise OutOfStock("This perk is out of stock.")
    if cost > available:
        raise InsufficientPoints(
            f"This perk costs {cost} points; the member has {available} available."
        )


async def _tier_names(
    perks: PerkRepository, perk_list: Sequence[Perk], account: Account
) -> dict[uuid.UUID, str]:
    ids = {t for p in perk_list for t in p.tier_ids if account.tier_id not in p.tier_ids}
    if not ids:
        return {}
    if account.tier_id is not None:
        ids.add(account.tier_id)
    return await perks.tier_names(account.brand_id, sorted(ids))


async def check_can_enter(session: AsyncSession, perk: Perk, account: Account) -> None:
    """What entering a drop of `perk` asks of the member: the rules a redemption would apply
    to them now (tier, limit, stock, points), so that entrants can win when the draw comes."""
    perks = PerkRepository(session)
    check_tier(perk, account.tier_id, await _tier_names(perks, [perk], account))
    used = await perks.completed_count(account.member_id, perk.id)
    check_member(
        perk,
        available=account.available,
        used=used,
        cost=perk.cost_points,
        codes_available=None,
        channel=Channel.DROP,
    )


def new_redemption(
    brand_id: uuid.UUID,
    perk: Perk,
    *,
    redemption_id: uuid.UUID,
    member_id: uuid.UUID,
    cost: int,
    code: str | None,
    drop_id: uuid.UUID | None,
    now: datetime,
    reveal: bool,
) -> Redemption:
    """A completed redemption's row (the bulk history loader writes the same)."""
    return Redemption(
        id=redemption_id,
        brand_id=brand_id,
        member_id=member_id,
        perk_id=perk.id,
        points=cost,
        status=RedemptionStatus.COMPLETED,
        code=code,
        drop_id=drop_id,
        created_at=now,
        cancelled_at=None,
        code_revealed_at=now if reveal and code is not None else None,
    )


def _redemption_data(redemption: Redemption, perk: Perk) -> RedemptionData:
    return redemption_data(
        perk,
        member_id=redemption.member_id,
        redemption_id=redemption.id,
        points=redemption.points,
        drop_id=redemption.drop_id,
    )


def redemption_data(
    perk: Perk,
    *,
    member_id: uuid.UUID,
    redemption_id: uuid.UUID,
    points: int,
    drop_id: uuid.UUID | None,
) -> RedemptionData:
    return RedemptionData(
        member_id=member_id,
        redemption_id=redemption_id,
        perk_id=perk.id,
        perk_name=perk.name,
        category=perk.category,
        points=points,
        drop_id=drop_id,
    )


def redemption_movement(
    perk: Perk, *, member_id: uuid.UUID, redemption_id: uuid.UUID, cost: int, now: datetime
) -> Movement:
    """The ledger line that pays for a redemption (the bulk history loader posts the same)."""
    return Movement(
        member_id=member_id,
        kind=EntryKind.REDEEM,
        bucket=Bucket.AVAILABLE,
        points=-cost,
        reason=f"Redeemed: {perk.name}",
        source_type="redemption",
        source_id=str(redemption_id),
        occurred_at=now,
    )


def redeemed_event(
    brand_id: uuid.UUID,
    perk: Perk,
    *,
    member_id: uuid.UUID,
    redemption_id: uuid.UUID,
    points: int,
    drop_id: uuid.UUID | None,
    now: datetime,
) -> PerkRedeemed:
    """`perk.redeemed` for one redemption (the bulk history loader writes the same)."""
    return PerkRedeemed(
        brand_id=brand_id,
        subject_id=member_id,
        occurred_at=now,
        data=redemption_data(
            perk,
            member_id=member_id,
            redemption_id=redemption_id,
            points=points,
            drop_id=drop_id,
        ),
    )


async def redeem(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    perk_id: uuid.UUID,
    *,
    channel: Channel,
    now: datetime | None = None,
    drop_id: uuid.UUID | None = None,
    reveal: bool = False,
    members: MemberSource | None,
) -> Redemption:
    """The one redemption path (see the module doc for the rules, in the order checked)."""
    now = now or utcnow()
    perks = PerkRepository(session)
    perk = await perks.get(brand_id, perk_id, keep=True)
    if perk is None or (channel in _DIRECT and not perk.active):
        raise PerkNotFound(f"No active perk {perk_id} in this brand.")
    account = await account_for(session, brand_id, member_id=member_id, members=members)
    check_active(account)
    if channel in _DIRECT:
        check_offer(perk, drop_only=await perks.has_drop(perk.id), now=now)
    check_tier(perk, account.tier_id, await _tier_names(perks, [perk], account))
    cost = 0 if channel is Channel.BIRTHDAY else perk.cost_points
    program = await program_for(session, brand_id) if cost else None

    locked = await LedgerRepository(session).lock_account(brand_id, member_id)
    if locked is None:  # the row cannot vanish (accounts are never deleted); be explicit anyway
        raise MemberNotFound(f"No member {member_id} in this brand.")
    used = await perks.completed_count(member_id, perk.id)
    check_member(
        perk,
        available=locked.available,
        used=used,
        cost=cost,
        codes_available=None,
        channel=channel,
    )
    if perk.inventory_remaining is not None and not await perks.take_unit(perk.id):
        raise OutOfStock("This perk is out of stock.")
    redemption_id = new_id()
    code: str | None = None
    if perk.kind is PerkKind.DISCOUNT_CODE:
        code = await perks.claim_code(perk.id, redemption_id)
        if code is None:
            raise OutOfStock("This perk has no discount codes left.")
    redemption = new_redemption(
        brand_id,
        perk,
        redemption_id=redemption_id,
        member_id=member_id,
        cost=cost,
        code=code,
        drop_id=drop_id,
        now=now,
        reveal=reveal,
    )
    await perks.add_redemption(redemption)
    if program is not None:
        await post(
            session,
            brand_id,
            program,
            redemption_movement(
                perk, member_id=member_id, redemption_id=redemption.id, cost=cost, now=now
            ),
        )
    await OUTBOX.add(
        session,
        redeemed_event(
            brand_id,
            perk,
            member_id=member_id,
            redemption_id=redemption.id,
            points=redemption.points,
            drop_id=drop_id,
            now=now,
        ),
    )
    return redemption


# --- What a member sees ---------------------------------------------------------------------


def _offer(
    state: PerkState, account: Account, now: datetime, names: dict[uuid.UUID, str]
) -> PerkOffer:
    perk = state.perk
    refusal: KinfolkError | None = None
    try:
        if not perk.active:  # only a read by id shows one: the catalog lists active perks
            raise PerkNotFound("This perk has been withdrawn from the catalog.")
        check_active(account)
        check_offer(perk, drop_only=state.drop_only, now=now)
        check_tier(perk, account.tier_id, names)
        check_member(
            perk,
            available=account.available,
            used=state.used,
            cost=perk.cost_points,
            codes_available=state.codes_available,
            channel=Channel.MEMBER,
        )
    except KinfolkError as exc:
        refusal = exc
    detail: str | None = None
    if refusal is not None:
        detail = (
            refusal.detail["message"] if isinstance(refusal.detail, dict) else str(refusal.detail)
        )
    return PerkOffer(
        id=perk.id,
        name=perk.name,
        description=perk.description,
        image_url=perk.image_url,
        category=perk.category,
        tags=perk.tags,
        kind=perk.kind,
        cost_points=perk.cost_points,
        valid_from=perk.valid_from,
        valid_until=perk.valid_until,
        inventory_remaining=perk.inventory_remaining,
        per_member_limit=perk.per_member_limit,
        redeemed_by_me=state.used,
        redeemable=refusal is None,
        reason=refusal.code if refusal is not None else None,
        reason_detail=detail,
    )


@dataclass(frozen=True, slots=True)
class OfferQuery:
    """What the member narrows their view of the catalog to."""

    category: str | None = None
    # True: only perks whose cost is within the member's available points; False: only the
    # others; None: either.
    affordable: bool | None = None
    tier_id: uuid.UUID | None = None  # only perks members of this tier may redeem

    def filters(self, available: int) -> OfferFilters:
        return OfferFilters(
            category=self.category,
            max_cost=available if self.affordable is True else None,
            min_cost=available + 1 if self.affordable is False else None,
            tier_id=self.tier_id,
        )


async def offers(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    page: PageRequest,
    *,
    include_all: bool = False,
    query: OfferQuery = OfferQuery(),
    now: datetime | None = None,
    members: MemberSource | None,
) -> Page[PerkOffer]:
    """The active perks in id order: only those the member can redeem now, or (`include_all`)
    every one with `redeemable` and the reason a redemption would be refused; `query` narrows
    them in SQL, so a page is as full as it can be."""
    now = now or utcnow()
    account = await account_for(session, brand_id, member_id=member_id, members=members)
    perks = PerkRepository(session)
    filters = query.filters(account.available)
    shown: list[PerkOffer] = []
    page.forwards_only()  # filled page by page while rules drop perks
    after, more = page.after, False
    while not more:
        batch = await perks.offers(
            brand_id, member_id, after=after, limit=_OFFER_BATCH, filters=filters
        )
        names = await _tier_names(perks, [s.perk for s in batch], account)
        for state in batch:
            offer = _offer(state, account, now, names)
            if not (include_all or offer.redeemable):
                continue
            if len(shown) == page.limit:
                more = True
                break
            shown.append(offer)
        if len(batch) < _OFFER_BATCH:
            break
        after = batch[-1].perk.id
    return Page[PerkOffer](items=shown, next=encode_cursor(shown[-1].id) if more else None)


async def offers_by_id(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    *,
    now: datetime | None = None,
    members: MemberSource | None,
) -> list[PerkOffer]:
    """These perks of the brand as the member sees them, redeemable or not; a perk withdrawn
    from the catalog is shown (a redemption still names it) with the reason PerkNotFound."""
    now = now or utcnow()
    account = await account_for(session, brand_id, member_id=member_id, members=members)
    perks = PerkRepository(session)
    states = await perks.offers_by_ids(brand_id, member_id, ids)
    names = await _tier_names(perks, [s.perk for s in states], account)
    return [_offer(state, account, now, names) for state in states]


# --- Redemptions ----------------------------------------------------------------------------


async def list_redemptions(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    page: PageRequest,
    status: RedemptionStatus | None = None,
    *,
    members: MemberSource | None,
) -> Sequence[Redemption]:
    """A member's redemptions, newest first (codes only once revealed)."""
    await account_for(session, brand_id, member_id=member_id, members=members)
    return await PerkRepository(session).member_redemptions(brand_id, member_id, page, status)


async def redemptions_by_id(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    members: MemberSource | None,
) -> Sequence[Redemption]:
    """These redemptions, those of them that are the member's (codes only once revealed)."""
    await account_for(session, brand_id, member_id=member_id, members=members)
    return await PerkRepository(session).member_redemptions_by_ids(brand_id, member_id, ids)


async def reveal_code(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    redemption_id: uuid.UUID,
    now: datetime | None = None,
) -> Redemption:
    """Shows the member the code of one of their redemptions (from now on it is revealed).

    A cancelled redemption's unrevealed code went back to the pool: it is never shown.
    """
    perks = PerkRepository(session)
    redemption = await perks.redemption(brand_id, redemption_id, for_update=True)
    if redemption is None or redemption.member_id != member_id:
        raise RedemptionNotFound(f"No redemption {redemption_id} of yours.")
    if (
        redemption.code is not None
        and redemption.code_revealed_at is None
        and redemption.status is RedemptionStatus.COMPLETED
    ):
        redemption.code_revealed_at = now or utcnow()
        await session.flush()
    return redemption


def _member_may_cancel(redemption: Redemption, now: datetime) -> None:
    if redemption.drop_id is not None or redemption.points == 0:
        raise NotCancellable(
            "Drop wins and gifts cannot be cancelled by the member; ask the brand's staff."
        )
    if redemption.code_revealed_at is not None:
        raise NotCancellable(
            "Its discount code has been shown and may be in use; ask the brand's staff."
        )
    deadline = redemption.created_at + MEMBER_CANCEL_WINDOW
    minutes = int(MEMBER_CANCEL_WINDOW.total_seconds() // 60)
    if now > deadline:
        raise NotCancellable(
            {
                "message": f"Members can cancel a redemption within {minutes} minutes of "
                "making it; ask the brand's staff.",
                "cancellable_until": deadline.isoformat(),
            }
        )


async def cancel_redemption(
    session: AsyncSession,
    brand_id: uuid.UUID,
    redemption_id: uuid.UUID,
    *,
    member_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Redemption:
    """Cancels a redemption: staff any time, the member (`member_id`) within the window.

    Refunds the points, gives the unit (and an unrevealed code) back; twice changes nothing.
    """
    now = now or utcnow()
    perks = PerkRepository(session)
    found = await perks.redemption(brand_id, redemption_id)
    if found is None or (member_id is not None and found.member_id != member_id):
        raise RedemptionNotFound(f"No redemption {redemption_id} in this brand.")
    # Same lock order as redeeming: the account first, then the perk row and codes.
    await LedgerRepository(session).lock_account(brand_id, found.member_id)
    redemption = await perks.redemption(brand_id, redemption_id, for_update=True)
    assert redemption is not None
    if redemption.status is RedemptionStatus.CANCELLED:
        return redemption
    if member_id is not None:
        _member_may_cancel(redemption, now)
    perk = await perks.get(brand_id, redemption.perk_id)
    assert perk is not None  # perks with redemptions are never deleted
    await perks.return_unit(perk.id)
    if redemption.code is not None and redemption.code_revealed_at is None:
        await perks.release_code(redemption.id)
    if redemption.points:
        program = await program_for(session, brand_id)
        await post(
            session,
            brand_id,
            program,
            Movement(
                member_id=redemption.member_id,
                kind=EntryKind.REFUND,
                bucket=Bucket.AVAILABLE,
                points=redemption.points,
                reason=f"Refund: {perk.name} cancelled",
                source_type="redemption",
                source_id=str(redemption.id),
                occurred_at=now,
            ),
        )
    redemption.status = RedemptionStatus.CANCELLED
    redemption.cancelled_at = now
    await session.flush()
    await OUTBOX.add(
        session,
        PerkRedemptionCancelled(
            brand_id=brand_id,
            subject_id=redemption.member_id,
            occurred_at=now,
            data=_redemption_data(redemption, perk),
        ),
    )
    return redemption


# --- Birthday gifts -------------------------------------------------------------------------

# What makes one birthday perk unfit for a member: the job then tries the next one.
_GIFT_SKIPS = (OutOfStock, TierNotEligible, MemberNotFound, MemberSuspended, PerkNotFound)


async def _grant_birthday_gift(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    candidates: Sequence[Perk],
    now: datetime,
) -> bool:
    perks = PerkRepository(session)
    account = await LedgerRepository(session).lock_account(brand_id, member_id)
    if (
        account is None
        or account.member_status != "active"
        or account.birthday is None
        or account.birthday.month != now.month
        or await perks.has_birthday_gift(member_id, now.year)
    ):
        return False  # changed since it was listed, or another run granted it meanwhile
    for perk in candidates:
        if perk.tier_ids and account.tier_id not in perk.tier_ids:
            continue
        try:
            async with session.begin_nested():
                redemption = await redeem(
                    session,
                    brand_id,
                    member_id,
                    perk.id,
                    channel=Channel.BIRTHDAY,
                    now=now,
                    members=None,  # a job: the account was just read
                )
        except _GIFT_SKIPS:
            continue
        await perks.add_birthday_gift(
            BirthdayGift(
                member_id=member_id,
                year=now.year,
                brand_id=brand_id,
                redemption_id=redemption.id,
                granted_at=now,
            )
        )
        return True
    return False


@dataclass(frozen=True, slots=True)
class _BirthdayPerks:
    brand_id: uuid.UUID
    candidates: list[Perk]  # most valuable first


async def grant_birthday_gifts(
    session: AsyncSession,
    now: datetime | None = None,
    *,
    batch_size: int = BIRTHDAY_BATCH_SIZE,
    limit: RunLimit | None = None,
) -> int:
    """The daily birthday job, for every brand (as far as `limit` goes: see `RunLimit`);
    returns how many gifts it granted."""
    now = now or utcnow()
    limit = limit or RunLimit()
    granted = 0
    perks = PerkRepository(session)
    by_brand = [
        _BirthdayPerks(brand_id, list(group))
        for brand_id, group in groupby(await perks.birthday_perks(now), key=lambda p: p.brand_id)
    ]
    for brand in limit.brands(by_brand):
        if limit.stop_before(brand):
            break

        async def fetch(
            after: uuid.UUID | None, brand_id: uuid.UUID = brand.brand_id
        ) -> list[uuid.UUID]:
            return await perks.birthday_members(
                brand_id, now.month, now.year, after=after, limit=batch_size
            )

        async def grant(member_ids: list[uuid.UUID], brand: _BirthdayPerks = brand) -> None:
            nonlocal granted
            for member_id in member_ids:
                granted += await _grant_birthday_gift(
                    session, brand.brand_id, member_id, brand.candidates, now
                )

        await in_batches(fetch, grant, batch_size, brand.brand_id, limit, member_of=itself)
    return granted
