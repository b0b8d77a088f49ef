"""Fair drops: scarce perks handed out by a seeded, auditable draw or a first-come queue.

**Setting up** (staff). A drop names a perk, how many units it gives (`units`), the method, the
entry window `opens_at .. closes_at` and, optionally, an earlier opening `early_opens_at` for the
members of `early_tier_ids`. Its perk becomes drop-only (never redeemed directly); it cannot be a
birthday perk; its stock (inventory and, for codes, the free pool) must cover `units` plus what
the perk's other undrawn drops promise. The seed is random unless staff give one; only its
SHA-256 is shown until the draw. A drop changes or is deleted only before it first opens.

**Entering** (members) costs nothing and debits nothing. A member enters once, between their
opening (`early_opens_at` if their tier has early access, else `opens_at`) and `closes_at`:
before, `DropNotOpenYet` (409, with the time to come back); after, `DropClosed` (409). Entering
again returns the same entry (200). At entry the member must be active, in a tier the perk allows,
under the perk's per-member limit and hold at least its cost in available points, and the perk
must have stock (the same codes as redeeming); `drop.entered` is emitted.

**Drawing** happens at `closes_at`: a job every minute draws every due drop, and staff may draw
one (`POST /drops/{id}/draw`, refused with `DropStillOpen` before `closes_at`). Drawing a drawn
drop changes nothing and returns the same result. The perk's active flag and validity window
govern the catalog and direct redemptions only: a drop hands out its perk on its own schedule.

The procedure, exactly (every audit repeats it):

1. entrants = the entrant member ids as lower-case hyphenated UUID strings, sorted;
   entrants_sha256 = hex SHA-256 of "\\n".join(entrants), UTF-8 encoded.
2. The order: for method `draw`, rng = random.Random(f"{seed}:{drop_id}") (CPython's Mersenne
   Twister; a str seed is hashed with SHA-512), then rng.shuffle(entrants); the shuffled list
   is the order. For method `queue`, the order is by entry time, then member id.
3. Walk the order from position 1, redeeming the perk for each entrant through the normal
   redemption path (the perk's cost is debited; its tier rule and per-member limit apply) until
   `units` entrants have won. An entrant who cannot redeem by then (too few points, limit
   reached, tier no longer allowed, suspended or erased) is skipped, with the outcome
   skipped:<error code>, and the unit goes to the next in order. If the perk runs out of stock
   the walk stops (that entrant: skipped:OutOfStock). Entrants after the walk stopped are
   not_reached. A member has one entry per drop, so nobody wins twice.

Winners are charged like any redemption (`perk.redeemed`, `points.redeemed`) and get `drop.won`;
losers keep their points. Each winner's redemption runs in a savepoint, so a skipped entrant
leaves nothing behind but its outcome. `GET /drops/{id}/audit` shows the seed (once drawn), the
entrant list and its hash, and the ordered outcomes, so anyone can re-run steps 1 and 2.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.errors import ValidationFailed
from services.kernel.ids import new_id
from services.kernel.pagination import Page, PageRequest
from services.rewards.drops.repository import DropFilters, DropRepository, EntryResult
from services.rewards.drops.schemas import (
    AuditLine,
    DropAudit,
    DropCreate,
    DropRead,
    DropUpdate,
    EntryRead,
    MyDrop,
)
from services.rewards.errors import (
    DropClosed,
    DropNotFound,
    DropNotOpenYet,
    DropStarted,
    DropStillOpen,
    InsufficientPoints,
    InventoryTooLow,
    MemberNotFound,
    MemberSuspended,
    OutOfStock,
    RedemptionLimitReached,
    TierNotEligible,
    UnknownPerk,
    UnknownTier,
)
from services.rewards.events import DropEntered, DropEntryData, DropWon, DropWonData
from services.rewards.ledger.members import MemberSource
from services.rewards.ledger.service import account_for
from services.rewards.models import (
    OUTBOX,
    Account,
    Drop,
    DropEntry,
    DropMethod,
    DropStatus,
    Perk,
    PerkKind,
)
from services.rewards.perks import service as perks_service
from services.rewards.perks.repository import PerkRepository

log = structlog.get_logger(__name__)

assert __doc__ is not None
PROCEDURE = "1. " + __doc__.split("\n1. ", 1)[1].split("\n\n", 1)[0] + "\n"

# Why an entrant is passed over in a draw: the unit goes to the next entrant in order.
_SKIPS = (
    InsufficientPoints,
    RedemptionLimitReached,
    TierNotEligible,
    MemberNotFound,
    MemberSuspended,
)


# --- The procedure, as pure functions anyone can re-run -------------------------------------


def seed_sha256(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def sorted_entrants(member_ids: Sequence[uuid.UUID]) -> list[str]:
    return sorted(str(m) for m in member_ids)


def entrants_sha256(member_ids: Sequence[uuid.UUID]) -> str:
    return hashlib.sha256("\n".join(sorted_entrants(member_ids)).encode()).hexdigest()


def draw_order(
    method: DropMethod,
    seed: str,
    drop_id: uuid.UUID,
    entries: Sequence[tuple[uuid.UUID, datetime]],
) -> list[uuid.UUID]:
    """Steps 1 and 2 of the procedure: the order in which entrants are offered the units."""
    if method is DropMethod.QUEUE:
        return [m for m, _ in sorted(entries, key=lambda e: (e[1], str(e[0])))]
    entrants = sorted_entrants([m for m, _ in entries])
    random.Random(f"{seed}:{drop_id}").shuffle(entrants)
    return [uuid.UUID(m) for m in entrants]


# --- Staff: setting drops up ----------------------------------------------------------------


def drop_read(drop: Drop) -> DropRead:
    drawn = drop.status is DropStatus.DRAWN
    return DropRead(
        id=drop.id,
        perk_id=drop.perk_id,
        method=drop.method,
        units=drop.units,
        early_opens_at=drop.early_opens_at,
        early_tier_ids=drop.early_tier_ids,
        opens_at=drop.opens_at,
        closes_at=drop.closes_at,
        status=drop.status,
        drawn_at=drop.drawn_at,
        seed_sha256=seed_sha256(drop.seed),
        seed=drop.seed if drawn else None,
        created_at=drop.created_at,
    )


def _invalid(field: str, message: str) -> list[dict[str, object]]:
    return [{"loc": ["body", field], "msg": message, "type": "value_error"}]


async def _check_supply(
    session: AsyncSession, perk: Perk, units: int, *, besides: uuid.UUID | None
) -> None:
    """The perk's stock must cover this drop and its other undrawn drops (perk row locked)."""
    promised = units + await DropRepository(session).reserved_units(perk.id, besides=besides)
    if perk.inventory_remaining is not None and promised > perk.inventory_remaining:
        raise InventoryTooLow(
            _invalid(
                "units",
                f"the perk has {perk.inventory_remaining} units left and its drops would "
                f"promise {promised}",
            )
        )
    if perk.kind is PerkKind.DISCOUNT_CODE:
        _, free = await PerkRepository(session).code_counts(perk.id)
        if promised > free:
            raise InventoryTooLow(
                _invalid(
                    "units",
                    f"the perk has {free} free codes and its drops would promise {promised}; "
                    "upload more codes first",
                )
            )


async def _check_early_tiers(
    session: AsyncSession, brand_id: uuid.UUID, tier_ids: Sequence[uuid.UUID]
) -> None:
    known = await PerkRepository(session).known_tiers(brand_id, tier_ids)
    unknown = [t for t in tier_ids if t not in known]
    if unknown:
        raise UnknownTier(
            _invalid("early_tier_ids", f"unknown tier ids: {', '.join(map(str, unknown))}")
        )


async def create_drop(
    session: AsyncSession, brand_id: uuid.UUID, payload: DropCreate, now: datetime | None = None
) -> Drop:
    now = now or utcnow()
    perk = await PerkRepository(session).get(brand_id, payload.perk_id, for_update=True)
    if perk is None:
        raise UnknownPerk(_invalid("perk_id", f"no perk {payload.perk_id} in this brand"))
    if perk.is_birthday_gift:
        raise ValidationFailed(_invalid("perk_id", "a birthday perk cannot be dropped"))
    if payload.closes_at <= now:
        raise ValidationFailed(_invalid("closes_at", "must be in the future"))
    await _check_early_tiers(session, brand_id, payload.early_tier_ids)
    await _check_supply(session, perk, payload.units, besides=None)
    drop = Drop(
        id=new_id(),
        brand_id=brand_id,
        perk_id=perk.id,
        method=payload.method,
        units=payload.units,
        early_opens_at=payload.early_opens_at,
        early_tier_ids=payload.early_tier_ids,
        opens_at=payload.opens_at,
        closes_at=payload.closes_at,
        seed=payload.seed or secrets.token_hex(16),
        status=DropStatus.SCHEDULED,
        drawn_at=None,
        created_at=now,
    )
    await DropRepository(session).add(drop)
    return drop


async def get_drop(session: AsyncSession, brand_id: uuid.UUID, drop_id: uuid.UUID) -> Drop:
    drop = await DropRepository(session).get(brand_id, drop_id)
    if drop is None:
        raise DropNotFound(f"No drop {drop_id} in this brand.")
    return drop


async def list_drops(
    session: AsyncSession, brand_id: uuid.UUID, filters: DropFilters, page: PageRequest
) -> Sequence[Drop]:
    return await DropRepository(session).page(brand_id, filters, page)


def _first_opening(drop: Drop) -> datetime:
    return drop.early_opens_at or drop.opens_at


async def _locked_unstarted(
    session: AsyncSession, brand_id: uuid.UUID, drop_id: uuid.UUID, now: datetime
) -> Drop:
    drop = await DropRepository(session).lock(drop_id, brand_id)
    if drop is None:
        raise DropNotFound(f"No drop {drop_id} in this brand.")
    if drop.status is DropStatus.DRAWN or now >= _first_opening(drop):
        raise DropStarted(
            f"The drop opened at {_first_opening(drop).isoformat()}; it can no longer change."
        )
    return drop


async def update_drop(
    session: AsyncSession,
    brand_id: uuid.UUID,
    drop_id: uuid.UUID,
    payload: DropUpdate,
    now: datetime | None = None,
) -> Drop:
    """Applies the fields sent, before the drop first opens; checks the result as a whole."""
    now = now or utcnow()
    drop = await _locked_unstarted(session, brand_id, drop_id, now)
    sent = payload.model_fields_set
    merged = {field: getattr(payload, field) for field in sent}
    opens_at = merged.get("opens_at", drop.opens_at)
    closes_at = merged.get("closes_at", drop.closes_at)
    early_opens_at = merged.get("early_opens_at", drop.early_opens_at)
    early_tier_ids = merged.get("early_tier_ids", drop.early_tier_ids) or []
    if "early_opens_at" in sent and early_opens_at is None and "early_tier_ids" not in sent:
        early_tier_ids = []  # clearing the early window clears its tiers
    if closes_at <= opens_at:
        raise ValidationFailed(_invalid("closes_at", "must be after opens_at"))
    if closes_at <= now:
        raise ValidationFailed(_invalid("closes_at", "must be in the future"))
    if early_opens_at is not None and early_opens_at >= opens_at:
        raise ValidationFailed(_invalid("early_opens_at", "must be before opens_at"))
    if (early_opens_at is None) != (not early_tier_ids):
        raise ValidationFailed(
            _invalid("early_tier_ids", "early_opens_at and early_tier_ids go together")
        )
    await _check_early_tiers(session, brand_id, early_tier_ids)
    if "units" in sent:
        perk = await PerkRepository(session).get(brand_id, drop.perk_id, for_update=True)
        assert perk is not None
        await _check_supply(session, perk, merged["units"], besides=drop.id)
    for field in ("method", "units", "opens_at", "closes_at", "seed"):
        if field in sent:
            setattr(drop, field, merged[field])
    drop.early_opens_at = early_opens_at
    drop.early_tier_ids = list(early_tier_ids)
    await session.flush()
    return drop


async def delete_drop(session: AsyncSession, brand_id: uuid.UUID, drop_id: uuid.UUID) -> None:
    drop = await _locked_unstarted(session, brand_id, drop_id, utcnow())
    repository = DropRepository(session)
    if await repository.has_entries(drop.id):  # only possible with a clock skew; be safe
        raise DropStarted("The drop has entries; it can no longer be deleted.")
    await repository.delete(drop)


# --- Members: entering ----------------------------------------------------------------------


def opening_for(drop: Drop, account: Account) -> datetime:
    """When this member may enter: early if their tier has early access."""
    if drop.early_opens_at is not None and account.tier_id in drop.early_tier_ids:
        return drop.early_opens_at
    return drop.opens_at


async def enter(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    drop_id: uuid.UUID,
    now: datetime | None = None,
    *,
    members: MemberSource | None,
) -> tuple[DropEntry, bool]:
    """The member's entry, and whether it is new (entering twice returns the first entry)."""
    now = now or utcnow()
    drops = DropRepository(session)
    drop = await drops.get(brand_id, drop_id)
    if drop is None:
        raise DropNotFound(f"No drop {drop_id} in this brand.")
    existing = await drops.entry(drop.id, member_id)
    if existing is not None:
        return existing, False
    account = await account_for(session, brand_id, member_id=member_id, members=members)
    perks_service.check_active(account)
    if drop.status is DropStatus.DRAWN or now >= drop.closes_at:
        raise DropClosed(
            {
                "message": f"Entries closed at {drop.closes_at.isoformat()}.",
                "closes_at": drop.closes_at.isoformat(),
            }
        )
    opens_at = opening_for(drop, account)
    if now < opens_at:
        raise DropNotOpenYet(
            {
                "message": f"Entries open for you at {opens_at.isoformat()}; come back then.",
                "opens_at": opens_at.isoformat(),
            }
        )
    perks = PerkRepository(session)
    perk = await perks.get(brand_id, drop.perk_id)
    assert perk is not None  # a perk with drops is never deleted
    await perks_service.check_can_enter(session, perk, account)
    entry = await drops.insert_entry(
        {"drop_id": drop.id, "member_id": member_id, "brand_id": brand_id, "entered_at": now}
    )
    if entry is None:  # a concurrent request entered first: the same entry
        found = await drops.entry(drop.id, member_id)
        assert found is not None
        return found, False
    await OUTBOX.add(
        session,
        DropEntered(
            brand_id=brand_id,
            subject_id=member_id,
            occurred_at=now,
            data=DropEntryData(
                member_id=member_id, drop_id=drop.id, perk_id=perk.id, entered_at=now
            ),
        ),
    )
    return entry, True


async def my_drops(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    page: PageRequest,
    members: MemberSource | None,
) -> Page[MyDrop]:
    account = await account_for(session, brand_id, member_id=member_id, members=members)
    rows = await DropRepository(session).member_page(brand_id, member_id, page)
    return Page[MyDrop].of(
        rows, page, key=lambda row: row[0].id, item=lambda row: _my_drop(row, account)
    )


async def my_drops_by_id(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    members: MemberSource | None,
) -> list[MyDrop]:
    """These drops of the brand, each with the member's entry if any."""
    account = await account_for(session, brand_id, member_id=member_id, members=members)
    rows = await DropRepository(session).member_drops_by_ids(brand_id, member_id, ids)
    return [_my_drop(row, account) for row in rows]


def _my_drop(row: tuple[Drop, DropEntry | None], account: Account) -> MyDrop:
    drop, entry = row
    opens_at = opening_for(drop, account)
    return MyDrop(
        id=drop.id,
        perk_id=drop.perk_id,
        method=drop.method,
        units=drop.units,
        opens_at=opens_at,
        closes_at=drop.closes_at,
        early_access=opens_at != drop.opens_at,
        status=drop.status,
        entry=EntryRead.of(entry) if entry is not None else None,
    )


# --- Drawing --------------------------------------------------------------------------------


async def _draw(session: AsyncSession, drop: Drop, now: datetime) -> None:
    """Steps 1 to 3 of the procedure, with the drop row locked by the caller."""
    drops = DropRepository(session)
    entries = await drops.entries(drop.id)
    order = draw_order(
        drop.method, drop.seed, drop.id, [(e.member_id, e.entered_at) for e in entries]
    )
    await drops.lock_entrants(drop.id)
    results: list[EntryResult] = []
    winners, stopped = 0, False
    for position, member_id in enumerate(order, start=1):
        outcome: str | None = None
        redemption_id: uuid.UUID | None = None
        if not stopped and winners < drop.units:
            try:
                async with session.begin_nested():
                    redemption = await perks_service.redeem(
                        session,
                        drop.brand_id,
                        member_id,
                        drop.perk_id,
                        channel=perks_service.Channel.DROP,
                        now=now,
                        drop_id=drop.id,
                        members=None,  # a job: entrants have accounts
                    )
            except OutOfStock as exc:
                outcome, stopped = f"skipped:{exc.code}", True
            except _SKIPS as exc:
                outcome = f"skipped:{exc.code}"
            else:
                winners += 1
                outcome, redemption_id = "won", redemption.id
                await OUTBOX.add(
                    session,
                    DropWon(
                        brand_id=drop.brand_id,
                        subject_id=member_id,
                        occurred_at=now,
                        data=DropWonData(
                            member_id=member_id,
                            drop_id=drop.id,
                            perk_id=drop.perk_id,
                            redemption_id=redemption.id,
                            position=position,
                        ),
                    ),
                )
        results.append(EntryResult(member_id, position, outcome, redemption_id))
    await drops.record_results(drop.id, results)
    drop.status = DropStatus.DRAWN
    drop.drawn_at = now
    await session.flush()
    log.info("drop.drawn", drop_id=str(drop.id), entrants=len(entries), winners=winners)


async def draw(
    session: AsyncSession, brand_id: uuid.UUID, drop_id: uuid.UUID, now: datetime | None = None
) -> Drop:
    """Staff's draw: refused before `closes_at`; a drawn drop is returned unchanged."""
    now = now or utcnow()
    drop = await DropRepository(session).lock(drop_id, brand_id)
    if drop is None:
        raise DropNotFound(f"No drop {drop_id} in this brand.")
    if drop.status is DropStatus.DRAWN:
        return drop
    if now < drop.closes_at:
        raise DropStillOpen(
            {
                "message": f"Entries are open until {drop.closes_at.isoformat()}; "
                "the draw runs after that.",
                "closes_at": drop.closes_at.isoformat(),
            }
        )
    await _draw(session, drop, now)
    return drop


async def draw_due(session: AsyncSession, now: datetime | None = None) -> int:
    """The job: draws every brand's drops whose entries have closed; returns how many it drew.

    A drop another transaction is drawing is skipped (it will be drawn there). A drop whose draw
    fails is rolled back to its savepoint, logged, and tried again on the next run.
    """
    now = now or utcnow()
    drops = DropRepository(session)
    drawn = 0
    for drop_id in await drops.due(now):
        try:
            async with session.begin_nested():
                drop = await drops.lock(drop_id, skip_locked=True)
                if drop is None or drop.status is DropStatus.DRAWN:
                    continue
                await _draw(session, drop, now)
                drawn += 1
        except Exception:
            log.exception("drop.draw_failed", drop_id=str(drop_id))
    return drawn


async def audit(session: AsyncSession, brand_id: uuid.UUID, drop_id: uuid.UUID) -> DropAudit:
    drop = await get_drop(session, brand_id, drop_id)
    entries = await DropRepository(session).entries(drop.id)
    member_ids = [e.member_id for e in entries]
    drawn = drop.status is DropStatus.DRAWN
    ordered = sorted((e for e in entries if e.position is not None), key=lambda e: e.position or 0)
    return DropAudit(
        drop_id=drop.id,
        perk_id=drop.perk_id,
        method=drop.method,
        units=drop.units,
        status=drop.status,
        drawn_at=drop.drawn_at,
        seed_sha256=seed_sha256(drop.seed),
        seed=drop.seed if drawn else None,
        entrants_count=len(entries),
        entrants_sha256=entrants_sha256(member_ids),
        entrants=[uuid.UUID(m) for m in sorted_entrants(member_ids)],
        order=[
            AuditLine(
                position=e.position or 0,
                member_id=e.member_id,
                entered_at=e.entered_at,
                outcome=e.outcome or "not_reached",
            )
            for e in ordered
        ]
        if drawn
        else [],
        winners=[e.member_id for e in ordered if e.won] if drawn else [],
        procedure=PROCEDURE,
    )
