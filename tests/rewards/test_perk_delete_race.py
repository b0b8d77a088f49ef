"""A perk being redeemed cannot be deleted under the redemption: the delete waits for it (here,
with a short lock timeout, it is refused) instead of failing on a foreign key afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.kernel.db import Database
from services.kernel.ids import new_id
from services.members import service as members_service
from services.rewards.models import Perk, PerkKind
from services.rewards.perks import service as perks_service
from services.rewards.perks.repository import PerkRepository
from tests.conftest import purge_brand


@pytest.fixture
async def perk(engine_database: Database) -> AsyncIterator[Perk]:
    async with engine_database.unit_of_work() as session:
        brand, _ = await members_service.create_brand(session, f"Race {uuid.uuid4().hex[:6]}")
        perk = Perk(
            id=new_id(),
            brand_id=brand.id,
            name="Unlimited tote",
            category="gifts",
            kind=PerkKind.FREE_PRODUCT,
            cost_points=10,
        )
        session.add(perk)
    yield perk
    await purge_brand(engine_database, perk.brand_id)


async def delete_waiting_briefly(database: Database, perk: Perk) -> None:
    async with database.unit_of_work() as deleting:
        await deleting.execute(text("SET LOCAL lock_timeout = '200ms'"))
        await perks_service.delete_perk(deleting, perk.brand_id, perk.id)


async def test_a_perk_held_by_a_redemption_cannot_be_deleted_under_it(
    engine_database: Database, perk: Perk
) -> None:
    async with engine_database.unit_of_work() as redeeming:
        # What the redemption path does first: read the perk and keep it.
        held = await PerkRepository(redeeming).get(perk.brand_id, perk.id, keep=True)
        assert held is not None
        with pytest.raises(DBAPIError, match="lock"):
            await delete_waiting_briefly(engine_database, perk)
    # Once the redemption's transaction is over, the delete goes through.
    async with engine_database.unit_of_work() as deleting:
        await perks_service.delete_perk(deleting, perk.brand_id, perk.id)
    async with engine_database.unit_of_work() as session:
        assert await PerkRepository(session).get(perk.brand_id, perk.id) is None
