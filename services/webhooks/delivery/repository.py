"""All SQL of delivering: leasing due deliveries, recording attempts, and an endpoint's health.

Claims lock the endpoint rows they count (`SKIP LOCKED`, so workers never wait for each other)
and then the deliveries they lease: an endpoint's concurrency limit holds across every worker
process, counted from the leases in the table. A rate-limited endpoint has no more in flight
than its rate per second either, so none of its attempts waits a whole lease for its turn."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.events import DisabledReason

# One statement a pass: the endpoints with due deliveries and room under their limits (locked,
# `SKIP LOCKED`), the pass's budget shared evenly between them, and at each the head of each
# member's queue: a delivery waits while an earlier pending one about the same member to the
# same endpoint is younger than the hold (a per-row probe of ix_deliveries_member_order).
# Candidates come in ix_deliveries_due's order, so each LIMIT stops its scan early.
_LEASE = text(
    """
    WITH room AS (
        SELECT e.id,
            least(e.max_concurrency, coalesce(e.rate_limit_per_second, e.max_concurrency)) - (
                SELECT count(*) FROM webhooks.deliveries d
                WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.leased_until > :now
            ) AS free
        FROM webhooks.endpoints e
        WHERE e.enabled AND EXISTS (
            SELECT 1 FROM webhooks.deliveries d
            WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= :now
        )
        FOR NO KEY UPDATE OF e SKIP LOCKED
    ), wanted AS (
        SELECT id AS endpoint_id,
            least(free, greatest(1, CAST(:budget AS int) / count(*) OVER ())) AS slots
        FROM room
        WHERE free > 0
    ), picked AS (
        SELECT p.id FROM wanted w CROSS JOIN LATERAL (
            SELECT d.id FROM webhooks.deliveries d
            WHERE d.endpoint_id = w.endpoint_id
              AND d.status = 'pending'
              AND d.next_attempt_at <= :now
              AND (
                  SELECT 1 FROM webhooks.deliveries earlier
                  WHERE earlier.endpoint_id = d.endpoint_id
                    AND earlier.member_id = d.member_id
                    AND earlier.status = 'pending'
                    AND earlier.id < d.id
                    AND earlier.created_at > :hold_since
                  LIMIT 1
              ) IS NULL
            ORDER BY d.next_attempt_at
            LIMIT w.slots
            FOR UPDATE OF d SKIP LOCKED
        ) p
        LIMIT :budget
    )
    UPDATE webhooks.deliveries d
    SET leased_until = :lease, next_attempt_at = :lease
    FROM picked, webhooks.messages m, webhooks.endpoints e
    WHERE d.id = picked.id AND m.id = d.message_id AND e.id = d.endpoint_id
    RETURNING d.id, d.message_id, d.endpoint_id, d.brand_id, d.attempts,
        m.payload::text AS body, e.url, e.headers, e.secret,
        CASE WHEN e.previous_secret_expires_at > :now THEN e.previous_secret END
            AS previous_secret,
        e.rate_limit_per_second, e.failing_since IS NOT NULL AS endpoint_failing
    """
)

# Each result moves its delivery on, but only while its lease holds (a worker too slow to
# report leaves the delivery to whoever leased it next), and goes into the attempt log (unless
# the delivery was deleted meanwhile: its endpoint, or its member erased). One statement: the
# log's EXISTS sees the table as it was before the update, which changes no row's existence.
_SETTLE = text(
    """
    WITH r AS (
        SELECT * FROM unnest(
            CAST(:ids AS bigint[]), CAST(:leases AS timestamptz[]), CAST(:statuses AS text[]),
            CAST(:retry_ats AS timestamptz[]), CAST(:attempted_ats AS timestamptz[]),
            CAST(:brand_ids AS uuid[]), CAST(:message_ids AS uuid[]),
            CAST(:endpoint_ids AS uuid[]), CAST(:outcomes AS text[]),
            CAST(:response_statuses AS smallint[]), CAST(:response_bodies AS text[]),
            CAST(:errors AS text[]), CAST(:durations AS int[])
        ) AS r(
            id, lease, status, retry_at, attempted_at, brand_id, message_id, endpoint_id,
            outcome, response_status, response_body, error, duration_ms
        )
    ), settled AS (
        UPDATE webhooks.deliveries d
        SET status = r.status,
            attempts = d.attempts + 1,
            next_attempt_at = coalesce(r.retry_at, d.next_attempt_at),
            leased_until = NULL,
            last_attempt_at = r.attempted_at
        FROM r
        WHERE d.id = r.id AND d.leased_until = r.lease
    )
    INSERT INTO webhooks.attempts (
        brand_id, delivery_id, message_id, endpoint_id, attempted_at, outcome,
        response_status, response_body, error, duration_ms, next_attempt_at
    )
    SELECT r.brand_id, r.id, r.message_id, r.endpoint_id, r.attempted_at, r.outcome,
        r.response_status, r.response_body, r.error, r.duration_ms, r.retry_at
    FROM r
    WHERE EXISTS (SELECT 1 FROM webhooks.deliveries d WHERE d.id = r.id)
    """
)

# How far the deliveries table has changed since PostgreSQL last sampled it.
_CHANGES_SINCE_ANALYZE = text(
    """
    SELECT s.n_mod_since_analyze, greatest(c.reltuples, 0)::bigint AS rows
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.relid = 'webhooks.deliveries'::regclass
    """
)

_RECOVERED = text(
    """
    UPDATE webhooks.endpoints SET failing_since = NULL
    WHERE id = ANY(CAST(:ids AS uuid[])) AND failing_since IS NOT NULL
    """
)

_FAILING = text(
    """
    UPDATE webhooks.endpoints e SET failing_since = f.since
    FROM unnest(CAST(:ids AS uuid[]), CAST(:since AS timestamptz[])) AS f(id, since)
    WHERE e.id = f.id AND e.failing_since IS NULL
    """
)

_DISABLE = text(
    """
    UPDATE webhooks.endpoints
    SET enabled = false, disabled_reason = :reason, updated_at = :now
    WHERE id = ANY(CAST(:ids AS uuid[])) AND enabled
      AND (:reason = 'gone' OR failing_since <= :failing_before)
    RETURNING id, brand_id, url, failing_since
    """
)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased delivery with everything needed to attempt it."""

    delivery_id: int
    message_id: uuid.UUID
    endpoint_id: uuid.UUID
    brand_id: uuid.UUID
    attempts: int
    leased_until: datetime
    body: bytes
    url: str
    headers: dict[str, str]
    secrets: tuple[str, ...]  # the current one first
    rate_limit_per_second: int | None
    endpoint_failing: bool  # when leased: a success must clear the endpoint's failure streak


@dataclass(frozen=True, slots=True)
class Settled:
    """One attempt's result as it is recorded."""

    claimed: Claimed
    attempted_at: datetime
    succeeded: bool
    retry_at: datetime | None
    response_status: int | None
    response_body: str | None
    error: str | None
    duration_ms: int

    @property
    def status(self) -> str:
        if self.succeeded:
            return "succeeded"
        return "pending" if self.retry_at is not None else "failed"


@dataclass(frozen=True, slots=True)
class Disabled:
    endpoint_id: uuid.UUID
    brand_id: uuid.UUID
    url: str
    failing_since: datetime | None
    reason: DisabledReason


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lease(
        self, *, now: datetime, lease: datetime, hold_since: datetime, budget: int
    ) -> list[Claimed]:
        """Up to `budget` due deliveries, leased until `lease`, shared between the endpoints
        that have some due and room under their limits."""
        leased = await self.session.execute(
            _LEASE,
            {"now": now, "lease": lease, "hold_since": hold_since, "budget": budget},
        )
        return [
            Claimed(
                delivery_id=row.id,
                message_id=row.message_id,
                endpoint_id=row.endpoint_id,
                brand_id=row.brand_id,
                attempts=row.attempts,
                leased_until=lease,
                body=row.body.encode(),
                url=row.url,
                headers=row.headers,
                secrets=(row.secret, *([row.previous_secret] if row.previous_secret else [])),
                rate_limit_per_second=row.rate_limit_per_second,
                endpoint_failing=row.endpoint_failing,
            )
            for row in leased
        ]

    async def settle(self, results: Sequence[Settled]) -> None:
        """Record the attempts and move each delivery on (its lease permitting)."""
        if not results:
            return
        await self.session.execute(
            _SETTLE,
            {
                "ids": [r.claimed.delivery_id for r in results],
                "leases": [r.claimed.leased_until for r in results],
                "statuses": [r.status for r in results],
                "retry_ats": [r.retry_at for r in results],
                "attempted_ats": [r.attempted_at for r in results],
                "brand_ids": [r.claimed.brand_id for r in results],
                "message_ids": [r.claimed.message_id for r in results],
                "endpoint_ids": [r.claimed.endpoint_id for r in results],
                "outcomes": ["succeeded" if r.succeeded else "failed" for r in results],
                "response_statuses": [r.response_status for r in results],
                "response_bodies": [r.response_body for r in results],
                "errors": [r.error for r in results],
                "durations": [r.duration_ms for r in results],
            },
        )

    async def refresh_statistics(self, min_changes: int, share: float) -> bool:
        """ANALYZE the deliveries table when more than `min_changes` rows and `share` of it
        changed since it was last sampled; whether it did."""
        row = (await self.session.execute(_CHANGES_SINCE_ANALYZE)).one_or_none()
        if row is None or row.n_mod_since_analyze <= max(min_changes, share * row.rows):
            return False
        await self.session.execute(text("ANALYZE webhooks.deliveries"))
        return True

    async def note_health(
        self,
        recovered: Sequence[uuid.UUID],
        failing: dict[uuid.UUID, datetime],
    ) -> None:
        """Endpoints that answered well forget their failures; the others remember when their
        failures began."""
        if recovered:
            await self.session.execute(_RECOVERED, {"ids": sorted(recovered)})
        if failing:
            ids = sorted(failing)
            await self.session.execute(_FAILING, {"ids": ids, "since": [failing[i] for i in ids]})

    async def disable(
        self,
        ids: Sequence[uuid.UUID],
        reason: DisabledReason,
        *,
        now: datetime,
        failing_before: datetime,
    ) -> list[Disabled]:
        """Disable the endpoints that are still enabled (and, for `failing`, have failed since
        before `failing_before`); the ones this call disabled."""
        if not ids:
            return []
        rows = await self.session.execute(
            _DISABLE,
            {
                "ids": sorted(ids),
                "reason": reason.value,
                "now": now,
                "failing_before": failing_before,
            },
        )
        return [Disabled(row.id, row.brand_id, row.url, row.failing_since, reason) for row in rows]
