"""The ledger's nightly audit of its invariant, in UTC, after the expiry jobs have run."""

from __future__ import annotations

from services.kernel.jobs import JobSpec, Schedule
from services.rewards.ledger.service import audit_ledger

AUDIT_LEDGER = JobSpec(
    "rewards.audit_ledger", audit_ledger, cron=Schedule(hour=4, minute=11), timeout_seconds=3600
)
