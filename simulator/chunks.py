"""One chunk of a chunked phase (members, purchases): generate its records and load them through
the service's bulk path in one transaction. The same functions run in the simulating process or in
worker processes (`simulator.workers`), so a chunk loads the same either way.

Each is idempotent: a chunk committed before a crash that kept the run's state from being written
is recognised (its first member, or its last order, is there) and skipped, so a rerun never loads
it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import Database
from services.members import service as members_service
from services.members.importing import NDJSON
from services.rewards.errors import PurchaseNotFound
from services.rewards.history.service import load_history
from services.rewards.purchases import service as purchases_service
from simulator import redemptions, world
from simulator.records import chunk_external_ids, historic_purchases, member_ndjson, order_id

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WorldView:
    """What a chunk needs of the world, made once per process (the arrays are deterministic,
    so every process makes the same)."""

    params: world.WorldParams
    members: world.Members
    catalog: world.Catalog
    lift: world.F64
    _plans: dict[Callable[[WorldView], Any], Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, params: world.WorldParams, members: world.Members | None = None) -> WorldView:
        return cls(
            params=params,
            members=world.make_members(params) if members is None else members,
            catalog=world.make_catalog(params),
            lift=world.lift_by_day(params),
        )

    def plan(self, make: Callable[[WorldView], T]) -> T:
        """What `make` derives from the world (the community's plan, say), made once in this
        process: plans are deterministic, so each worker process makes the same."""
        if make not in self._plans:
            self._plans[make] = make(self)
        return cast(T, self._plans[make])


async def load_members_chunk(
    database: Database, view: WorldView, brand_id: uuid.UUID, chunk: int, args: tuple[Any, ...]
) -> dict[str, int]:
    """Imports the chunk's members (NDJSON, COPY); counts the members the chunk holds."""
    params = view.params
    low, high = params.chunk_range(chunk)
    async with database.unit_of_work() as session:
        if await members_service.member_ids(
            session, brand_id, [world.external_id(params.seed, low)]
        ):
            return {"members": high - low}
        body = member_ndjson(params, view.members, low, high)
        report = await members_service.import_members(
            session, brand_id, NDJSON, _one_chunk(body), dry_run=False
        )
        if report.imported != high - low:
            failures = "; ".join(f"line {f.line}: {f.error} {f.detail}" for f in report.failed[:3])
            raise RuntimeError(
                f"members chunk {chunk}: {report.imported} of {high - low} imported ({failures})"
            )
    return {"members": report.imported}


async def load_purchases_chunk(
    database: Database, view: WorldView, brand_id: uuid.UUID, chunk: int, args: tuple[Any, ...]
) -> dict[str, int]:
    """Loads the chunk's members' whole purchase history, with their returns and their
    redemptions of the simulated perks (none when the brand lacks them), in the brand's currency
    (`args`); counts the purchases the chunk holds (those of a chunk loaded before are counted,
    not loaded again)."""
    (currency,) = args
    params = view.params
    batch = world.purchases(params, view.members, view.catalog, chunk, view.lift)
    if not len(batch):
        return {"purchases": 0}
    last = len(batch) - 1
    last_order = order_id(params.seed, int(batch.member[last]), int(batch.ordinal[last]))
    async with database.unit_of_work() as session:
        if await _has_purchase(session, brand_id, last_order):
            return {"purchases": len(batch)}
        external_ids = chunk_external_ids(params, chunk)
        ids = await members_service.member_ids(session, brand_id, external_ids)
        member_ids = [ids[e] for e in external_ids]
        rows = historic_purchases(params, batch, view.catalog, member_ids, currency)
        plan = redemptions.chunk_intents(params, view.members, batch)
        perks = await redemptions.perk_ids(session, brand_id)
        report = await load_history(
            session,
            brand_id,
            rows,
            redemptions=redemptions.historic_redemptions(params, plan, member_ids, perks, chunk),
            returns=redemptions.historic_returns(params, plan, batch, view.catalog),
        )
    return {"purchases": report.purchases}


async def _one_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _has_purchase(session: AsyncSession, brand_id: uuid.UUID, order: str) -> bool:
    try:
        await purchases_service.get_purchase(session, brand_id, order)
    except PurchaseNotFound:
        return False
    return True
