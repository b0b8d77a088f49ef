"""The nightly ledger audit: it names exactly the accounts whose cached balances are not the sum
of their entries, with both figures, in the log and the metric, and corrects nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from services.rewards.ledger import service as ledger
from services.rewards.ledger.repository import Balances, Drift, LedgerRepository
from services.rewards.ledger.tasks import AUDIT_LEDGER
from services.rewards.models import Account, Bucket, EntryKind, Program
from services.rewards.module import REWARDS
from tests.conftest import BrandFixture
from tests.rewards.conftest import MakeMember
from tests.rewards.points_helpers import account_of, at, move, set_program

WHEN = at("2026-03-01T12:00:00+00:00")


def _drifted_gauge() -> float | None:
    return REGISTRY.get_sample_value("kinfolk_rewards_ledger_drifted_accounts")


async def test_the_audit_names_each_drifted_account_and_changes_nothing(
    session: AsyncSession,
    program: Program,
    make_member: MakeMember,
    brand: BrandFixture,
    other_brand: BrandFixture,
) -> None:
    kept = await make_member("audit-kept")
    drifted = await make_member("audit-drifted")
    pending = await make_member("audit-pending")
    for member in (kept, drifted, pending):
        await move(session, program, member.id, 120, WHEN)
        await move(session, program, member.id, -20, WHEN, kind=EntryKind.REDEEM)
    await move(session, program, pending.id, 30, WHEN, bucket=Bucket.PENDING)
    other_program = await set_program(session, other_brand.id)
    stranger = await make_member("audit-x", brand_fixture=other_brand)
    await move(session, other_program, stranger.id, 50, WHEN)
    # Nothing drifts through the ledger's own paths.
    assert await ledger.audit_ledger(session, brand_id=brand.id) == 0
    assert _drifted_gauge() == 0

    # Cached sums written past the ledger (a bug, or a hand-made UPDATE), in both buckets.
    changes: list[tuple[uuid.UUID, dict[str, Any]]] = [
        (drifted.id, {"available": Account.available + 7}),
        (pending.id, {"pending": 0}),
        (stranger.id, {"available": 1}),
    ]
    for member_id, change in changes:
        await session.execute(update(Account).where(Account.member_id == member_id).values(change))
    with capture_logs() as logs:
        assert await ledger.audit_ledger(session, brand_id=brand.id) == 2
    assert _drifted_gauge() == 2
    named = sorted(
        (line["member_id"], line["cached_available"], line["entries_available"],
         line["cached_pending"], line["entries_pending"])
        for line in logs
        if line["event"] == "rewards.ledger_drift"
    )  # fmt: skip
    assert named == sorted([(str(drifted.id), 107, 100, 0, 0), (str(pending.id), 100, 100, 0, 30)])
    assert all(
        line["log_level"] == "error" for line in logs if line["event"] == "rewards.ledger_drift"
    )
    # Nothing was corrected: the cached figures are as the UPDATE left them.
    assert (await account_of(session, drifted.id)).available == 107

    everywhere = await LedgerRepository(session).drifted_accounts()
    mine = {d.member_id for d in everywhere} & {drifted.id, pending.id, stranger.id}
    assert mine == {drifted.id, pending.id, stranger.id}
    assert [d for d in everywhere if d.member_id == stranger.id] == [
        Drift(other_brand.id, stranger.id, Balances(1, 0), Balances(50, 0))
    ]
    limited = await LedgerRepository(session).drifted_accounts(brand.id, limit=1)
    assert len(limited) == 1
    # The same check for one member, as the tests use it.
    assert [await ledger.ledger_matches(session, m.id) for m in (kept, drifted, pending)] == [
        True,
        False,
        False,
    ]


def test_the_audit_runs_nightly_with_the_rewards_jobs() -> None:
    assert AUDIT_LEDGER in REWARDS.jobs
    assert AUDIT_LEDGER.name == "rewards.audit_ledger"
    assert AUDIT_LEDGER.cron is not None


@pytest.fixture(autouse=True)
def _reset_gauge() -> None:
    ledger.DRIFTED_ACCOUNTS.set(-1)
