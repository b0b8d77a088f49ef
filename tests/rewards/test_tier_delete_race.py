"""Deleting a tier while a purchase moves a member into it: the delete waits for the purchase,
then finds the member and refuses (TierInUse), instead of failing on a foreign key (a 500)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text, update

from services.kernel.db import Database
from services.kernel.ids import new_id
from services.members import service as members_service
from services.rewards.errors import TierInUse
from services.rewards.ledger import service as ledger
from services.rewards.ledger.repository import LedgerRepository
from services.rewards.ledger.schemas import ProgramSettings
from services.rewards.models import Account, Tier
from services.rewards.tiers import service as tiers_service
from services.rewards.tiers.repository import TierRepository
from tests.conftest import purge_brand


@pytest.fixture
async def tier(engine_database: Database) -> AsyncIterator[Tier]:
    async with engine_database.unit_of_work() as session:
        brand, _ = await members_service.create_brand(session, f"Race {uuid.uuid4().hex[:6]}")
        await ledger.configure_program(
            session, brand.id, ProgramSettings(currency="EUR", points_per_unit=1)
        )
        await LedgerRepository(session).upsert_account(
            brand_id=brand.id,
            member_id=uuid.uuid4(),
            external_id="race-1",
            birthday=None,
            member_status="active",
        )
        tier = Tier(id=new_id(), brand_id=brand.id, name="VIB", rank=1, threshold_minor=1)
        session.add(tier)
    yield tier
    await purge_brand(engine_database, tier.brand_id)


async def wait_until_someone_waits_on_a_lock(database: Database) -> None:
    for _ in range(500):
        async with database.engine.connect() as conn:
            waiting = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the delete never waited for the upgrade")


async def test_a_tier_being_given_to_a_member_cannot_be_deleted_under_it(
    engine_database: Database, tier: Tier
) -> None:
    async def delete() -> None:
        async with engine_database.unit_of_work() as deleting:
            await tiers_service.delete_tier(deleting, tier.brand_id, tier.id)

    async with engine_database.unit_of_work() as upgrading:
        # What a tier change does: keep the target tier, then move the member into it.
        assert await TierRepository(upgrading).keep(tier.id)
        await upgrading.execute(
            update(Account).where(Account.external_id == "race-1").values(tier_id=tier.id)
        )
        deleting = asyncio.create_task(delete())
        await wait_until_someone_waits_on_a_lock(engine_database)
    # The upgrade has committed; the delete now sees the member in the tier.
    with pytest.raises(TierInUse):
        await deleting
    async with engine_database.unit_of_work() as session:
        assert await TierRepository(session).keep(tier.id)
