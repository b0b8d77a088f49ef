"""Scheduled work of purchases: releasing pending points once the return window has closed."""

from __future__ import annotations

from services.kernel.jobs import JobSpec, Schedule
from services.rewards.purchases.service import release_due

# Every 5 minutes: points become spendable at most 5 minutes after their return window closes.
RELEASE_PENDING_PURCHASES = JobSpec(
    "rewards.release_pending_purchases",
    release_due,
    cron=Schedule(minute=frozenset(range(0, 60, 5))),
    timeout_seconds=600,
)
