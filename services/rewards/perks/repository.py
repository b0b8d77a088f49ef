"""All SQL of the perks catalog, redemptions and birthday gifts. Every query filters by brand
(or by a perk or member id already resolved within the brand)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    CursorResult,
    Result,
    Select,
    and_,
    any_,
    bindparam,
    case,
    exists,
    extract,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.pagination import PageRequest, keyset
from services.rewards.models import (
    Account,
    BirthdayGift,
    Drop,
    Perk,
    PerkCode,
    PerkKind,
    Redemption,
    RedemptionStatus,
    Tier,
)

_CODES_PER_STATEMENT = 2_000


@dataclass(frozen=True, slots=True)
class PerkFilters:
    category: str | None = None
    kind: PerkKind | None = None
    active: bool | None = None


@dataclass(frozen=True, slots=True)
class OfferFilters:
    """What narrows the member's view of the catalog, in SQL so that pages stay full."""

    category: str | None = None
    max_cost: int | None = None  # cost_points at most this
    min_cost: int | None = None  # cost_points at least this
    tier_id: uuid.UUID | None = None  # perks members of this tier may redeem


@dataclass(frozen=True, slots=True)
class PerkState:
    """A perk with what a member's view of it needs: their uses, its drops, its free codes."""

    perk: Perk
    used: int  # the member's completed (not cancelled) redemptions of it
    drop_only: bool
    codes_available: int | None  # None unless the perk hands out codes


def _completed_by(member_id: uuid.UUID | BindParameter[uuid.UUID]) -> Any:
    return (
        select(func.count())
        .where(
            Redemption.perk_id == Perk.id,
            Redemption.member_id == member_id,
            Redemption.status == RedemptionStatus.COMPLETED,
        )
        .scalar_subquery()
    )


def _free_codes() -> Any:
    return case(
        (
            Perk.kind == PerkKind.DISCOUNT_CODE,
            select(func.count())
            .where(PerkCode.perk_id == Perk.id, PerkCode.redemption_id.is_(None))
            .scalar_subquery(),
        ),
        else_=None,
    )


def _states(
    member_id: uuid.UUID | BindParameter[uuid.UUID],
) -> Select[Perk, int, bool, int | None]:
    return select(
        Perk,
        _completed_by(member_id).label("used"),
        exists().where(Drop.perk_id == Perk.id).label("drop_only"),
        _free_codes().label("codes_available"),
    )


# The member's view of perks by id, behind every perk the apps show (the gateway's `by_id`):
# built once and bound when run, since building it for every call cost a good part of the
# call's CPU; one array parameter, so any number of ids is one prepared statement.
_OFFERS_BY_IDS = (
    _states(bindparam("member_id", type_=UUID(as_uuid=True)))
    .where(
        Perk.brand_id == bindparam("brand_id", type_=UUID(as_uuid=True)),
        Perk.id == any_(bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))),
    )
    .order_by(Perk.id)
)


def _perk_states(rows: Result[Perk, int, bool, int | None]) -> list[PerkState]:
    return [
        PerkState(perk=row[0], used=row[1], drop_only=row[2], codes_available=row[3])
        for row in rows
    ]


class PerkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- catalog ---

    async def add(self, perk: Perk) -> None:
        self.session.add(perk)
        await self.session.flush()

    async def get(
        self,
        brand_id: uuid.UUID,
        perk_id: uuid.UUID,
        *,
        for_update: bool = False,
        keep: bool = False,
    ) -> Perk | None:
        """The perk as the database has it now (a copy already in the session is refreshed).

        `keep` takes FOR KEY SHARE: the perk cannot be deleted until this transaction ends (a
        delete waits, then finds what this transaction added), while concurrent redemptions'
        stock updates go on unhindered.
        """
        statement = (
            select(Perk)
            .where(Perk.brand_id == brand_id, Perk.id == perk_id)
            .execution_options(populate_existing=True)
        )
        if for_update:
            statement = statement.with_for_update()
        elif keep:
            statement = statement.with_for_update(read=True, key_share=True)
        return (await self.session.scalars(statement)).one_or_none()

    async def page(
        self, brand_id: uuid.UUID, filters: PerkFilters, page: PageRequest
    ) -> Sequence[Perk]:
        statement = select(Perk).where(Perk.brand_id == brand_id)
        if filters.category is not None:
            statement = statement.where(Perk.category == filters.category)
        if filters.kind is not None:
            statement = statement.where(Perk.kind == filters.kind)
        if filters.active is not None:
            statement = statement.where(Perk.active.is_(filters.active))
        return (await self.session.scalars(keyset(statement, Perk.id, page))).all()

    async def delete_if_unused(self, perk: Perk) -> bool:
        """Deletes a perk nothing refers to; False (and nothing deleted) otherwise."""
        used = await self.session.scalar(
            select(
                or_(
                    exists().where(Redemption.perk_id == perk.id),
                    exists().where(Drop.perk_id == perk.id),
                    exists().where(PerkCode.perk_id == perk.id),
                )
            )
        )
        if used:
            return False
        await self.session.delete(perk)
        await self.session.flush()
        return True

    async def known_tiers(
        self, brand_id: uuid.UUID, tier_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        if not tier_ids:
            return set()
        rows = await self.session.scalars(
            select(Tier.id).where(Tier.brand_id == brand_id, Tier.id.in_(tier_ids))
        )
        return set(rows)

    async def tier_names(
        self, brand_id: uuid.UUID, tier_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        if not tier_ids:
            return {}
        rows = await self.session.execute(
            select(Tier.id, Tier.name).where(Tier.brand_id == brand_id, Tier.id.in_(tier_ids))
        )
        return {row.id: row.name for row in rows}

    # --- what one member sees ---

    async def offers(
        self,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        *,
        after: uuid.UUID | None,
        limit: int,
        filters: OfferFilters = OfferFilters(),
    ) -> list[PerkState]:
        """Active perks in id order after `after`, with the member's view of each."""
        statement = (
            _states(member_id)
            .where(Perk.brand_id == brand_id, Perk.active.is_(True))
            .order_by(Perk.id)
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(Perk.id > after)
        if filters.category is not None:
            statement = statement.where(Perk.category == filters.category)
        if filters.max_cost is not None:
            statement = statement.where(Perk.cost_points <= filters.max_cost)
        if filters.min_cost is not None:
            statement = statement.where(Perk.cost_points >= filters.min_cost)
        if filters.tier_id is not None:
            statement = statement.where(
                or_(func.cardinality(Perk.tier_ids) == 0, Perk.tier_ids.contains([filters.tier_id]))
            )
        return _perk_states(await self.session.execute(statement))

    async def offers_by_ids(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> list[PerkState]:
        """These perks of the brand, active or not, with the member's view of each (one query)."""
        if not ids:
            return []
        parameters = {"member_id": member_id, "brand_id": brand_id, "ids": list(ids)}
        return _perk_states(await self.session.execute(_OFFERS_BY_IDS, parameters))

    async def has_drop(self, perk_id: uuid.UUID) -> bool:
        return bool(await self.session.scalar(select(exists().where(Drop.perk_id == perk_id))))

    async def completed_count(self, member_id: uuid.UUID, perk_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            select(func.count()).where(
                Redemption.member_id == member_id,
                Redemption.perk_id == perk_id,
                Redemption.status == RedemptionStatus.COMPLETED,
            )
        )
        return int(count or 0)

    async def outstanding(self, perk_id: uuid.UUID) -> int:
        """Redemptions of the perk that hold a unit of its inventory (completed ones)."""
        count = await self.session.scalar(
            select(func.count()).where(
                Redemption.perk_id == perk_id, Redemption.status == RedemptionStatus.COMPLETED
            )
        )
        return int(count or 0)

    # --- inventory and codes ---

    async def take_unit(self, perk_id: uuid.UUID) -> bool:
        """One unit of a limited perk, in one conditional UPDATE: False when none is left.

        Concurrent takers queue on the row lock and each re-checks the condition after the one
        before commits, so the count never goes below zero whatever the interleaving.
        """
        result = await self.session.execute(
            update(Perk)
            .where(Perk.id == perk_id, Perk.inventory_remaining > 0)
            .values(inventory_remaining=Perk.inventory_remaining - 1)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount == 1

    async def return_unit(self, perk_id: uuid.UUID) -> None:
        await self.session.execute(
            update(Perk)
            .where(Perk.id == perk_id, Perk.inventory_remaining.is_not(None))
            .values(inventory_remaining=Perk.inventory_remaining + 1)
            .execution_options(synchronize_session=False)
        )

    async def set_inventory(
        self, perk_id: uuid.UUID, total: int | None, remaining: int | None
    ) -> None:
        await self.session.execute(
            update(Perk)
            .where(Perk.id == perk_id)
            .values(inventory_total=total, inventory_remaining=remaining)
            .execution_options(synchronize_session=False)
        )

    async def claim_code(self, perk_id: uuid.UUID, redemption_id: uuid.UUID) -> str | None:
        """Hands the oldest free code to a redemption; None when the pool is empty.

        `FOR UPDATE SKIP LOCKED`: concurrent redemptions each take a different free code
        instead of queueing behind the one another transaction is about to take.
        """
        free = (
            select(PerkCode.id)
            .where(PerkCode.perk_id == perk_id, PerkCode.redemption_id.is_(None))
            .order_by(PerkCode.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        return await self.session.scalar(
            update(PerkCode)
            .where(PerkCode.id == free)
            .values(redemption_id=redemption_id)
            .returning(PerkCode.code)
            .execution_options(synchronize_session=False)
        )

    async def release_code(self, redemption_id: uuid.UUID) -> None:
        await self.session.execute(
            update(PerkCode)
            .where(PerkCode.redemption_id == redemption_id)
            .values(redemption_id=None)
            .execution_options(synchronize_session=False)
        )

    async def add_codes(
        self, brand_id: uuid.UUID, perk_id: uuid.UUID, codes: Sequence[tuple[uuid.UUID, str]]
    ) -> int:
        """Adds (id, code) pairs to the pool, ignoring codes it already has; returns how many."""
        added = 0
        # Chunks keep each statement under PostgreSQL's limit of 32,767 bind parameters.
        for start in range(0, len(codes), _CODES_PER_STATEMENT):
            chunk = codes[start : start + _CODES_PER_STATEMENT]
            statement = (
                insert(PerkCode)
                .values(
                    [
                        {"id": code_id, "perk_id": perk_id, "brand_id": brand_id, "code": code}
                        for code_id, code in chunk
                    ]
                )
                .on_conflict_do_nothing(index_elements=[PerkCode.perk_id, PerkCode.code])
                .returning(PerkCode.id)
            )
            added += len((await self.session.scalars(statement)).all())
        return added

    async def code_counts(self, perk_id: uuid.UUID) -> tuple[int, int]:
        """(all codes, free codes) of a perk."""
        row = (
            await self.session.execute(
                select(
                    func.count(),
                    func.count().filter(PerkCode.redemption_id.is_(None)),
                ).where(PerkCode.perk_id == perk_id)
            )
        ).one()
        return int(row[0]), int(row[1])

    # --- redemptions ---

    async def add_redemption(self, redemption: Redemption) -> None:
        self.session.add(redemption)
        await self.session.flush()

    async def redemption(
        self, brand_id: uuid.UUID, redemption_id: uuid.UUID, *, for_update: bool = False
    ) -> Redemption | None:
        statement = (
            select(Redemption)
            .where(Redemption.brand_id == brand_id, Redemption.id == redemption_id)
            .execution_options(populate_existing=True)
        )
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def member_redemptions(
        self,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        page: PageRequest,
        status: RedemptionStatus | None = None,
    ) -> Sequence[Redemption]:
        statement = select(Redemption).where(
            Redemption.brand_id == brand_id, Redemption.member_id == member_id
        )
        if status is not None:
            statement = statement.where(Redemption.status == status)
        return (
            await self.session.scalars(keyset(statement, Redemption.id, page, newest_first=True))
        ).all()

    async def member_redemptions_by_ids(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> Sequence[Redemption]:
        if not ids:
            return []
        statement = (
            select(Redemption)
            .where(
                Redemption.brand_id == brand_id,
                Redemption.member_id == member_id,
                Redemption.id.in_(ids),
            )
            .order_by(Redemption.id)
        )
        return (await self.session.scalars(statement)).all()

    # --- birthday gifts ---

    async def birthday_perks(self, now: datetime) -> Sequence[Perk]:
        """Every brand's active birthday perks open at `now`: by brand, most valuable first."""
        statement = (
            select(Perk)
            .where(
                Perk.is_birthday_gift.is_(True),
                Perk.active.is_(True),
                or_(Perk.valid_from.is_(None), Perk.valid_from <= now),
                or_(Perk.valid_until.is_(None), Perk.valid_until > now),
            )
            .order_by(Perk.brand_id, Perk.cost_points.desc(), Perk.id)
        )
        return (await self.session.scalars(statement)).all()

    async def birthday_members(
        self, brand_id: uuid.UUID, month: int, year: int, *, after: uuid.UUID | None, limit: int
    ) -> list[uuid.UUID]:
        """Active members born in `month` who have no birthday gift for `year` yet: the first
        `limit` after `after`, in member id order."""
        statement = select(Account.member_id).where(
            Account.brand_id == brand_id,
            Account.member_status == "active",
            Account.birthday.is_not(None),
            extract("month", Account.birthday) == month,
            ~exists().where(
                and_(BirthdayGift.member_id == Account.member_id, BirthdayGift.year == year)
            ),
        )
        if after is not None:
            statement = statement.where(Account.member_id > after)
        result = await self.session.scalars(statement.order_by(Account.member_id).limit(limit))
        return list(result.all())

    async def has_birthday_gift(self, member_id: uuid.UUID, year: int) -> bool:
        found = await self.session.scalar(
            select(literal(True)).where(
                BirthdayGift.member_id == member_id, BirthdayGift.year == year
            )
        )
        return bool(found)

    async def add_birthday_gift(self, gift: BirthdayGift) -> None:
        self.session.add(gift)
        await self.session.flush()
