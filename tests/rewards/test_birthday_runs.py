"""The two birthday jobs (points by the `birthday` rules, and the birthday perk) work through a
large brand in runs of a bounded size (`rewards.job_runs`): each run commits on its own, the
next starts where it stopped with the first run's `now`, and every member born this month is
paid and gifted exactly once."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.jobs import Continue
from services.rewards import job_runs
from services.rewards.activity.tasks import award_birthdays
from services.rewards.ledger.service import ledger_matches
from services.rewards.models import ActivityAward, BirthdayGift, Program
from services.rewards.perks.tasks import grant_birthday_gifts
from tests.conftest import BrandFixture, until_done
from tests.rewards.conftest import MakeMember
from tests.rewards.perk_helpers import create_perk
from tests.rewards.rule_helpers import make_rule

JUNE_10 = datetime.fromisoformat("2030-06-10T06:05:00+00:00")


async def test_both_birthday_jobs_take_a_large_brand_in_runs_and_miss_no_one(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(job_runs, "MEMBERS_PER_RUN", 2)
    june = [(await make_member(f"june-{n}", birthday=f"199{n}-06-1{n}")).id for n in range(5)]
    await make_member("july", birthday="1990-07-01")
    await make_rule(session, brand.id, "birthday", 250, name="Happy birthday")
    await create_perk(
        client,
        brand,
        name="Birthday mini set",
        category="birthday",
        cost_points=500,
        is_birthday_gift=True,
        inventory_total=10,
    )

    first = await award_birthdays(session, now=JUNE_10)
    assert isinstance(first, Continue)
    assert (first.done, first.arguments["now"]) == (2, JUNE_10)
    assert await until_done(award_birthdays, session, **first.arguments) == [2, 1]
    assert await until_done(grant_birthday_gifts, session, now=JUNE_10) == [2, 2, 1]
    # Nothing is left to do: a run after finds no one.
    assert await until_done(award_birthdays, session, now=JUNE_10) == [0]
    assert await until_done(grant_birthday_gifts, session, now=JUNE_10) == [0]

    paid = await session.scalars(select(ActivityAward.member_id).where(ActivityAward.points > 0))
    gifted = await session.scalars(select(BirthdayGift.member_id))
    assert sorted(paid) == sorted(june)
    assert sorted(gifted) == sorted(june)
    for member_id in june:
        assert await ledger_matches(session, member_id)
