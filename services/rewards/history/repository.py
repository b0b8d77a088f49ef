"""All SQL of the bulk history loader: the checks before a load, and the writes (COPY).

The rows are written with PostgreSQL's COPY on the session's own connection, inside its
transaction: a batch of 10,000 members and their purchases is a handful of statements, not one
round trip per row, and the caller's commit (or rollback) covers it like any other write.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Text, and_, any_, bindparam, exists, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import copy_records, driver_connection, table_of
from services.rewards.models import (
    Account,
    Drop,
    LedgerEntry,
    Lot,
    Perk,
    Purchase,
    Redemption,
    Return,
    TierChange,
)

_ACCOUNTS = table_of(Account)
_PURCHASES = table_of(Purchase)
_ENTRIES = table_of(LedgerEntry)
# Arrays, one parameter each: a batch's ids would exceed the protocol's 32,767 parameters.
_MEMBER_IDS = bindparam("member_ids", type_=ARRAY(UUID(as_uuid=True)))
_ORDER_IDS = bindparam("order_ids", type_=ARRAY(Text))
_RETURN_IDS = bindparam("return_ids", type_=ARRAY(Text))
_PERK_IDS = bindparam("perk_ids", type_=ARRAY(UUID(as_uuid=True)))

# Column orders of the records the service builds (`created_at` of entries: the server's now()).
PURCHASE_COLUMNS = (
    "id",
    "brand_id",
    "member_id",
    "order_id",
    "amount_minor",
    "currency",
    "lines",
    "points",
    "points_bucket",
    "pending_until",
    "returned_minor",
    "returned_points",
    "breakdown",
    "occurred_at",
    "created_at",
)
ENTRY_COLUMNS = (
    "id",
    "brand_id",
    "member_id",
    "kind",
    "bucket",
    "points",
    "reason",
    "source_type",
    "source_id",
    "occurred_at",
)
LOT_COLUMNS = (
    "id",
    "brand_id",
    "member_id",
    "entry_id",
    "points",
    "remaining",
    "earned_at",
    "expires_at",
    "reminded_at",
)
TIER_CHANGE_COLUMNS = (
    "id",
    "brand_id",
    "member_id",
    "from_tier_id",
    "to_tier_id",
    "reason",
    "window_spend_minor",
    "changed_at",
)
REDEMPTION_COLUMNS = (
    "id",
    "brand_id",
    "member_id",
    "perk_id",
    "points",
    "status",
    "code",
    "drop_id",
    "created_at",
    "cancelled_at",
    "code_revealed_at",
)
RETURN_COLUMNS = (
    "id",
    "brand_id",
    "purchase_id",
    "return_id",
    "amount_minor",
    "lines",
    "points_reversed",
    "occurred_at",
    "created_at",
)
# (member_id, tier_id, tier_since, available, pending, lifetime_earned, last_activity_at,
# inactivity_reminded_for)
AccountRecord = tuple[
    uuid.UUID,
    uuid.UUID | None,
    datetime | None,
    int,
    int,
    int,
    datetime | None,
    datetime | None,
]

# Raw asyncpg (arrays as one parameter each); the table is `Account`'s.
_UPDATE_ACCOUNTS = """
UPDATE rewards.accounts AS a
SET tier_id = v.tier_id,
    tier_since = v.tier_since,
    available = v.available,
    pending = v.pending,
    lifetime_earned = v.lifetime_earned,
    last_activity_at = v.last_activity_at,
    inactivity_reminded_for = v.inactivity_reminded_for
FROM unnest(
    $1::uuid[], $2::uuid[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bigint[],
    $7::timestamptz[], $8::timestamptz[]
) AS v(member_id, tier_id, tier_since, available, pending, lifetime_earned, last_activity_at,
       inactivity_reminded_for)
WHERE a.member_id = v.member_id AND a.brand_id = $9
"""


@dataclass(frozen=True, slots=True)
class AccountState:
    """A member's account as a load finds it (locked until the transaction ends)."""

    member_id: uuid.UUID
    member_status: str
    created_at: datetime
    has_history: bool  # any purchase, ledger entry, balance or tier already


class HistoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_accounts(
        self, brand_id: uuid.UUID, member_ids: Sequence[uuid.UUID]
    ) -> list[AccountState]:
        """The members' accounts, locked in member id order (the order every batch writer
        uses), so no purchase, redemption or job moves them before the load commits."""
        if not member_ids:
            return []
        a = _ACCOUNTS
        history = or_(
            a.c.tier_id.is_not(None),
            a.c.available != 0,
            a.c.pending != 0,
            a.c.lifetime_earned != 0,
            a.c.last_activity_at.is_not(None),
            exists().where(_ENTRIES.c.member_id == a.c.member_id),
            exists().where(_PURCHASES.c.member_id == a.c.member_id),
        )
        statement = (
            select(a.c.member_id, a.c.member_status, a.c.created_at, history.label("history"))
            .where(a.c.brand_id == brand_id, a.c.member_id == any_(_MEMBER_IDS))
            .order_by(a.c.member_id)
            .with_for_update(of=a)
        )
        rows = await self.session.execute(statement, {"member_ids": list(member_ids)})
        return [
            AccountState(row.member_id, row.member_status, row.created_at, bool(row.history))
            for row in rows
        ]

    async def taken_order_ids(self, brand_id: uuid.UUID, order_ids: Collection[str]) -> list[str]:
        """Which of these order ids the brand already has."""
        if not order_ids:
            return []
        p = _PURCHASES
        statement = select(p.c.order_id).where(
            and_(p.c.brand_id == brand_id, p.c.order_id == any_(_ORDER_IDS))
        )
        found = await self.session.scalars(statement, {"order_ids": list(order_ids)})
        return list(found.all())

    async def taken_return_ids(self, brand_id: uuid.UUID, return_ids: Collection[str]) -> list[str]:
        """Which of these return ids the brand already has."""
        if not return_ids:
            return []
        statement = select(Return.return_id).where(
            Return.brand_id == brand_id, Return.return_id == any_(_RETURN_IDS)
        )
        found = await self.session.scalars(statement, {"return_ids": list(return_ids)})
        return list(found.all())

    async def perks(
        self, brand_id: uuid.UUID, perk_ids: Collection[uuid.UUID]
    ) -> list[tuple[Perk, bool]]:
        """The brand's perks among these ids, each with whether a drop offers it; FOR KEY SHARE
        (as a redemption takes it): none can be deleted before the load commits."""
        if not perk_ids:
            return []
        statement = (
            select(Perk, exists().where(Drop.perk_id == Perk.id).label("drop_only"))
            .where(Perk.brand_id == brand_id, Perk.id == any_(_PERK_IDS))
            .order_by(Perk.id)
            .with_for_update(of=Perk, read=True, key_share=True)
        )
        rows = await self.session.execute(statement, {"perk_ids": list(perk_ids)})
        return [(row[0], bool(row[1])) for row in rows]

    async def write(
        self,
        *,
        purchases: Sequence[Sequence[object]],
        entries: Sequence[Sequence[object]],
        lots: Sequence[Sequence[object]],
        tier_changes: Sequence[Sequence[object]],
        redemptions: Sequence[Sequence[object]] = (),
        returns: Sequence[Sequence[object]] = (),
    ) -> None:
        """COPY the rows; entries before lots and purchases before returns (the foreign keys
        point back)."""
        await copy_records(self.session, _ENTRIES, ENTRY_COLUMNS, entries)
        await copy_records(self.session, table_of(Lot), LOT_COLUMNS, lots)
        await copy_records(self.session, _PURCHASES, PURCHASE_COLUMNS, purchases)
        await copy_records(self.session, table_of(TierChange), TIER_CHANGE_COLUMNS, tier_changes)
        await copy_records(self.session, table_of(Redemption), REDEMPTION_COLUMNS, redemptions)
        await copy_records(self.session, table_of(Return), RETURN_COLUMNS, returns)

    async def update_accounts(self, brand_id: uuid.UUID, records: Sequence[AccountRecord]) -> None:
        """Sets the accounts' sums, tier and activity in one statement (arrays, not a row each)."""
        if not records:
            return
        columns = list(zip(*records, strict=True))
        driver = await driver_connection(self.session)
        await driver.execute(_UPDATE_ACCOUNTS, *(list(c) for c in columns), brand_id)
