"""Scheduled work of tiers: the daily review that applies downgrade rules."""

from __future__ import annotations

from services.kernel.jobs import JobSpec, Schedule
from services.rewards.tiers.service import REVIEW_HOUR, REVIEW_MINUTE, review_tiers

REVIEW_TIERS = JobSpec(
    "rewards.review_tiers",
    review_tiers,
    cron=Schedule(hour=REVIEW_HOUR, minute=REVIEW_MINUTE),
    timeout_seconds=3600,
)
