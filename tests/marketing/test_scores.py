"""Scores on the member 360: RFM quintiles on hand-made members (ties, non-buyers), the churn
features of one member computed by hand, and the daily scoring through the real flow (members
and purchases through the APIs, their events projected, the job run, the member read back)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.ids import new_id
from services.marketing.models import ActivityKind, JournalEntry, MemberView
from services.marketing.scores import service, tasks
from services.marketing.scores.repository import FEATURES, ScoresRepository
from services.rewards.models import Program
from tests.conftest import BrandFixture, until_done
from tests.marketing.helpers import project
from tests.recommender.service_fixtures import MakeMember, make_member, program
from tests.rewards.purchase_helpers import buy, purchase

__all__ = ["make_member", "program"]

NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)


def _day(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 5, day, hour, tzinfo=UTC)


async def _member(
    session: AsyncSession,
    brand_id: uuid.UUID,
    *,
    orders: int = 0,
    spend: int = 0,
    last: datetime | None = None,
) -> uuid.UUID:
    member_id = new_id()
    session.add(
        MemberView(
            brand_id=brand_id,
            member_id=member_id,
            order_count=orders,
            spend_lifetime_minor=spend,
            last_purchase_at=last,
            refreshed_at=NOW,
        )
    )
    await session.flush()
    return member_id


async def _scores(session: AsyncSession, brand_id: uuid.UUID) -> dict[uuid.UUID, tuple[Any, ...]]:
    session.expire_all()
    rows = await session.execute(
        select(
            MemberView.member_id,
            MemberView.rfm_recency,
            MemberView.rfm_frequency,
            MemberView.rfm_monetary,
            MemberView.scored_at,
        ).where(MemberView.brand_id == brand_id)
    )
    return {row[0]: tuple(row[1:]) for row in rows}


async def test_rfm_quintiles_keep_ties_together_and_put_non_buyers_at_1(
    session: AsyncSession, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    # Ten buyers; ranks in brackets. Quintile = min(5, 1 + 5 * (rank - 1) // 9).
    # Recency by UTC day: j(1) i(2) h(3) g(4) d=e=f(5) c(8) a=b(9: the same day, 01:00/23:00).
    # Frequency: a=b=c=d 1 order (1), e=f 2 (5), g 3 (7), h=i 4 (8), j 10 (10).
    # Monetary: d 0 (1), c 10.00 (2), a=b 50.00 (3), f=g=h 70.00 (5), e (8), i (9), j (10).
    at = {
        "a": (1, 5_000, datetime(2026, 5, 14, 1, tzinfo=UTC)),
        "b": (1, 5_000, datetime(2026, 5, 14, 23, tzinfo=UTC)),
        "c": (1, 1_000, _day(12)),
        "d": (1, 0, _day(5)),  # everything returned: still a buyer
        "e": (2, 20_000, _day(5, 1)),
        "f": (2, 7_000, _day(5, 23)),
        "g": (3, 7_000, NOW - timedelta(days=40)),
        "h": (4, 7_000, NOW - timedelta(days=100)),
        "i": (4, 90_000, NOW - timedelta(days=200)),
        "j": (10, 150_000, NOW - timedelta(days=300)),
    }
    ids = {
        name: await _member(session, brand.id, orders=o, spend=s, last=last)
        for name, (o, s, last) in at.items()
    }
    ids["k"] = await _member(session, brand.id)  # never bought
    ids["l"] = await _member(session, brand.id)
    elsewhere = await _member(session, other_brand.id, orders=3, spend=100, last=_day(1))

    await service.write_rfm(session, brand.id, NOW)

    scores = await _scores(session, brand.id)
    expected = {
        "a": (5, 1, 2),
        "b": (5, 1, 2),
        "c": (4, 1, 1),
        "d": (3, 1, 1),  # tied with e and f: ntile(5) would put one of the three in 4
        "e": (3, 3, 4),
        "f": (3, 3, 3),
        "g": (2, 4, 3),
        "h": (2, 4, 3),
        "i": (1, 4, 5),
        "j": (1, 5, 5),
        "k": (1, 1, 1),
        "l": (1, 1, 1),
    }
    assert {name: scores[ids[name]] for name in expected} == {
        name: (*rfm, NOW) for name, rfm in expected.items()
    }
    # Another brand's members are not ranked with these, nor touched.
    assert (await _scores(session, other_brand.id))[elsewhere] == (None, None, None, None)


async def test_rfm_of_few_or_equal_buyers(session: AsyncSession, brand: BrandFixture) -> None:
    lone = await _member(session, brand.id, orders=2, spend=900, last=_day(3))
    await service.write_rfm(session, brand.id, NOW)
    assert (await _scores(session, brand.id))[lone] == (1, 1, 1, NOW)

    # Two buyers: the lower is 1, the higher 5; on a tie both stay 1.
    second = await _member(session, brand.id, orders=2, spend=1_500, last=_day(2))
    await service.write_rfm(session, brand.id, NOW)
    scores = await _scores(session, brand.id)
    assert scores[lone] == (5, 1, 1, NOW)
    assert scores[second] == (1, 1, 5, NOW)


async def _journal(
    session: AsyncSession,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    kind: ActivityKind,
    occurred_at: datetime,
    **values: Any,
) -> None:
    await session.execute(
        insert(JournalEntry).values(
            event_id=new_id(),
            brand_id=brand_id,
            member_id=member_id,
            kind=kind,
            occurred_at=occurred_at,
            **values,
        )
    )


async def test_churn_features_of_a_member_by_hand(
    session: AsyncSession, brand: BrandFixture
) -> None:
    member = new_id()
    at = NOW

    async def row(kind: ActivityKind, days_ago: float, **values: Any) -> None:
        await _journal(session, brand.id, member, kind, at - timedelta(days=days_ago), **values)

    await row(ActivityKind.PROFILE, 400, ref="created", data={})
    await row(ActivityKind.PURCHASE, 380, amount_minor=10_000)
    await row(ActivityKind.POINTS, 380, points=100, data={"available": 100, "pending": 0})
    await row(ActivityKind.PURCHASE, 200, amount_minor=4_000)
    await row(ActivityKind.PURCHASE, 60, amount_minor=3_000)
    await row(ActivityKind.RETURN, 50, amount_minor=1_000)
    await row(ActivityKind.POINTS, 50, points=-10, data={"available": 90, "pending": 0})
    await row(ActivityKind.PURCHASE, 20, amount_minor=2_500)
    await row(ActivityKind.REDEMPTION, 100, points=50)
    await row(ActivityKind.REDEMPTION, 15, points=20)
    await row(ActivityKind.REDEMPTION_CANCELLED, 14)
    await row(ActivityKind.POST, 10)
    await row(ActivityKind.REACTION, 5)
    await row(ActivityKind.COMMENT, 120)  # outside the 90 days
    # After the instant: not seen.
    await row(ActivityKind.PURCHASE, -1, amount_minor=99_000)
    await row(ActivityKind.POINTS, -1, points=990, data={"available": 1_080, "pending": 0})

    repository = ScoresRepository(session)
    [found] = await repository.features(brand.id, [member], at)
    assert found[0] == member
    assert dict(zip(FEATURES, found[1:], strict=True)) == {
        "days_since_purchase": 20.0,
        "days_since_active": 5.0,
        "tenure_days": 400.0,
        "orders_30d": 1.0,
        "orders_90d": 2.0,
        "orders_365d": 3.0,
        "orders_lifetime": 4.0,
        "mean_gap_days": 120.0,  # (380 - 20) / 3
        "spend_90d": 4_500.0,  # 30 - 10 + 25
        "spend_365d": 8_500.0,
        "spend_lifetime": 18_500.0,
        "redemptions_365d": 1.0,  # two, one cancelled
        "community_90d": 2.0,
        "points_available": 90.0,
    }
    # The outcome a training cutoff 30 days ago sees: it bought after (20 days ago).
    [past] = await repository.features_with_outcome(brand.id, [member], at - timedelta(days=30), at)
    assert past[1] == 30.0  # days since the purchase 60 days ago, as of then
    assert past[-1] is True
    [later] = await repository.features_with_outcome(
        brand.id, [member], at - timedelta(days=15), at
    )
    assert later[-1] is False  # the purchase tomorrow is beyond `until`

    # A member who joined later does not exist at the instant; one who never bought has no
    # recency and no gap.
    newcomer = new_id()
    await _journal(session, brand.id, newcomer, ActivityKind.PROFILE, at - timedelta(days=3))
    assert await repository.features(brand.id, [newcomer], at - timedelta(days=4)) == []
    [fresh] = await repository.features(brand.id, [newcomer], at)
    assert fresh[1] is None  # days_since_purchase
    assert fresh[FEATURES.index("mean_gap_days") + 1] is None
    assert fresh[FEATURES.index("tenure_days") + 1] == 3.0


async def test_daily_scoring_through_the_real_flow(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ana = await make_member("ana")
    bo = await make_member("bo")
    cy = await make_member("cy")
    now = datetime.now(UTC)
    await buy(client, brand, purchase(ana, "o-1", 9_000, occurred_at=now - timedelta(days=40)))
    await buy(client, brand, purchase(ana, "o-2", 3_000, occurred_at=now - timedelta(days=2)))
    await buy(client, brand, purchase(bo, "o-3", 5_000, occurred_at=now - timedelta(days=30)))
    await project(session)
    untouched = await _member(session, other_brand.id, orders=1, spend=10, last=now)

    # The cron run: every brand with members, one a run, each run queueing the next.
    assert await until_done(tasks.score_members, session) == [1, 1]

    async def view(member_id: uuid.UUID) -> dict[str, Any]:
        response = await client.get(f"/marketing/v1/members/{member_id}", headers=brand.headers)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    seen = {name: await view(m.id) for name, m in (("ana", ana), ("bo", bo), ("cy", cy))}
    assert {
        name: (v["rfm_recency"], v["rfm_frequency"], v["rfm_monetary"]) for name, v in seen.items()
    } == {
        "ana": (5, 5, 5),
        "bo": (1, 1, 1),
        "cy": (1, 1, 1),
    }
    assert all(v["scored_at"] is not None for v in seen.values())
    # Three members and a few days of history: the first training run was refused, so no
    # probabilities, and the refusal is listed with its reason.
    assert all(v["churn_probability"] is None for v in seen.values())
    listed = await client.get("/marketing/v1/churn-models", headers=brand.headers)
    assert listed.status_code == 200
    [refusal] = listed.json()
    assert (refusal["status"], refusal["reason"]) == ("refused", "not_enough_history")
    assert refusal["artifact_bytes"] == 0
    assert refusal["detail"].startswith("A churn model needs 180 days")
    # The cron run went over the other brand too: its hand-made row has no journal, so the
    # refresh dropped it, and its own training run was refused; it sees nothing of this brand.
    assert (await _scores(session, other_brand.id)).get(untouched) is None
    other = await client.get("/marketing/v1/churn-models", headers=other_brand.headers)
    assert [m["id"] for m in other.json()] != [refusal["id"]]
    assert [m["reason"] for m in other.json()] == ["not_enough_history"]
