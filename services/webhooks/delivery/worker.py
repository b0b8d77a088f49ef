"""The delivery loop each worker process runs (`kinfolk worker`, component
`webhooks.deliveries`).

Each pass, in one transaction, records the attempts that finished since the last pass and
leases what is due (see `repository.py`); then it attempts each leased delivery in its own task,
at most `webhooks_max_in_flight` at once. A slow or broken receiver holds only its endpoint's
concurrency slots, never the loop. A process that dies leaves its leases to run out: the
deliveries are due again then, with the same `webhook-id`, so nothing is lost and a receiver can
drop the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.loops import Backoff, sleep_or_stop
from services.kernel.module import LoopSpec
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.webhooks import signing
from services.webhooks.delivery.policy import next_step, retry_after_seconds
from services.webhooks.delivery.rate_limit import EndpointRateLimiter
from services.webhooks.delivery.repository import Claimed, DeliveryRepository, Disabled, Settled
from services.webhooks.delivery.sender import Sender
from services.webhooks.events import DisabledReason, EndpointDisabled, EndpointDisabledData
from services.webhooks.models import OUTBOX
from services.webhooks.urls import networks

log = structlog.get_logger(__name__)

ATTEMPTS = Counter("kinfolk_webhook_attempts_total", "Delivery attempts, by outcome.", ["outcome"])

# A lease lasts this many attempt timeouts: an attempt takes at most one, and the wait for its
# rate limit and the pass that records it take far less than another, so a live worker reports
# before its lease runs out. A worker that dies holds its deliveries no longer than this.
LEASE_TIMEOUTS = 2

# The lease query's plan depends on the deliveries table's statistics: planned on a sample taken
# when the table was small (or never, where autovacuum is off), the ordering probe scans every
# pending delivery of an endpoint for each candidate. So the loop looks every few seconds and
# has the table sampled once a burst has changed much of it.
STATISTICS_EVERY_SECONDS = 5.0
STATISTICS_MIN_CHANGES = 5_000
STATISTICS_SHARE = 0.2


class DeliveryWorker:
    def __init__(
        self,
        database: Database,
        redis: Redis,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._database = database
        self._settings = settings
        self._clock = clock
        self._uniform = uniform
        self._limiter = EndpointRateLimiter(redis)
        self._sender = Sender(
            networks(settings.webhooks_allowed_networks),
            settings.webhooks_timeout_seconds,
            settings.webhooks_max_in_flight,
        )
        self._lease = timedelta(seconds=settings.webhooks_timeout_seconds * LEASE_TIMEOUTS)
        self._finished: list[Settled] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._entered = 0
        self._statistics_due = 0.0

    async def __aenter__(self) -> DeliveryWorker:
        """Opens the HTTP pool; nested uses share it."""
        if self._entered == 0:
            await self._sender.__aenter__()
        self._entered += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._entered -= 1
        if self._entered == 0:
            # Attempts under way finish (or time out) before their connections close.
            await self._wait_in_flight(self._settings.webhooks_timeout_seconds)
            await self._sender.__aexit__(exc_type, exc, traceback)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then let the attempts under way finish and record them."""
        async with self:
            backoff = Backoff()
            while not stop.is_set():
                try:
                    await self.step()
                    backoff.reset()
                except Exception:
                    log.exception("webhooks.delivery_pass_failed")
                    await sleep_or_stop(stop, backoff.next_delay())
                    continue
                await self._idle(stop)
            await self._wait_in_flight(self._settings.webhooks_timeout_seconds)
            with contextlib.suppress(Exception):  # unrecorded attempts are retried after the lease
                await self.step(lease=False)

    async def deliver_due(self) -> int:
        """Attempt everything due now, and what that makes due, until nothing is; how many
        attempts were made. For tests and for draining by hand."""
        async with self:
            total = 0
            while True:
                started = await self.step()
                total += started
                await self._wait_in_flight(None)
                if started == 0 and not self._finished:
                    return total

    async def step(self, *, lease: bool = True) -> int:
        """Record the finished attempts and lease what is due; how many attempts started."""
        self._wake.clear()
        if time.monotonic() >= self._statistics_due:
            self._statistics_due = time.monotonic() + STATISTICS_EVERY_SECONDS
            async with self._database.unit_of_work() as session:
                await DeliveryRepository(session).refresh_statistics(
                    STATISTICS_MIN_CHANGES, STATISTICS_SHARE
                )
        finished, self._finished = self._finished, []
        try:
            async with self._database.unit_of_work() as session:
                await self._record(session, finished)
                claimed = await self._lease_due(session) if lease else []
        except BaseException:
            self._finished[:0] = finished  # not recorded: the next pass tries again
            raise
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Until an attempt finishes, a poll interval passes, or the loop is stopped."""
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(
                waits,
                timeout=self._settings.webhooks_poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for wait in waits:
                wait.cancel()

    async def _wait_in_flight(self, seconds: float | None) -> None:
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=seconds)

    async def _lease_due(self, session: AsyncSession) -> list[Claimed]:
        budget = self._settings.webhooks_max_in_flight - len(self._in_flight)
        if budget <= 0:
            return []
        now = self._clock()
        return await DeliveryRepository(session).lease(
            now=now,
            lease=now + self._lease,
            hold_since=now - timedelta(seconds=self._settings.webhooks_order_hold_seconds),
            budget=budget,
        )

    async def _attempt(self, delivery: Claimed) -> None:
        try:
            if delivery.rate_limit_per_second is not None:
                await self._limiter.acquire(delivery.endpoint_id, delivery.rate_limit_per_second)
            attempted_at = self._clock()
            message_id = str(delivery.message_id)
            headers = {
                **delivery.headers,
                **signing.headers(delivery.secrets, message_id, attempted_at, delivery.body),
            }
            answer = await self._sender.post(delivery.url, delivery.body, headers)
        except Exception:
            # Not recorded: the lease runs out and the delivery is attempted again.
            log.exception("webhooks.attempt_failed", delivery_id=delivery.delivery_id)
            return
        after = next_step(
            succeeded=answer.succeeded,
            attempts_before=delivery.attempts,
            attempted_at=attempted_at,
            schedule=self._settings.webhooks_retry_schedule_seconds,
            retry_after=retry_after_seconds(answer.retry_after, attempted_at),
            uniform=self._uniform,
        )
        ATTEMPTS.labels("succeeded" if answer.succeeded else "failed").inc()
        self._finished.append(
            Settled(
                claimed=delivery,
                attempted_at=attempted_at,
                succeeded=after.succeeded,
                retry_at=after.retry_at,
                response_status=answer.status,
                response_body=answer.body,
                error=answer.error,
                duration_ms=answer.duration_ms,
            )
        )
        self._wake.set()

    async def _record(self, session: AsyncSession, finished: Sequence[Settled]) -> None:
        if not finished:
            return
        repository = DeliveryRepository(session)
        await repository.settle(finished)
        # An endpoint that answered well even once is not failing; the others remember when
        # their failures began, and are disabled once that is too long ago (or at once, on 410).
        recovered = {r.claimed.endpoint_id for r in finished if r.succeeded}
        failing: dict[uuid.UUID, datetime] = {}
        for result in finished:
            endpoint_id = result.claimed.endpoint_id
            if endpoint_id not in recovered:
                failing[endpoint_id] = min(
                    failing.get(endpoint_id, result.attempted_at), result.attempted_at
                )
        await repository.note_health(
            [r.claimed.endpoint_id for r in finished if r.succeeded and r.claimed.endpoint_failing],
            failing,
        )
        now = self._clock()
        failing_before = now - timedelta(seconds=self._settings.webhooks_disable_after_seconds)
        gone = {r.claimed.endpoint_id for r in finished if r.response_status == 410}
        disabled = [
            *await repository.disable(
                sorted(gone), DisabledReason.GONE, now=now, failing_before=failing_before
            ),
            *await repository.disable(
                sorted(set(failing) - gone),
                DisabledReason.FAILING,
                now=now,
                failing_before=failing_before,
            ),
        ]
        for endpoint in disabled:
            await OUTBOX.add(session, _disabled_event(endpoint, now))
            log.warning(
                "webhooks.endpoint_disabled",
                endpoint_id=str(endpoint.endpoint_id),
                reason=endpoint.reason.value,
            )


def _disabled_event(endpoint: Disabled, now: datetime) -> EndpointDisabled:
    return EndpointDisabled(
        brand_id=endpoint.brand_id,
        occurred_at=now,
        data=EndpointDisabledData(
            endpoint_id=endpoint.endpoint_id,
            url=endpoint.url,
            reason=endpoint.reason,
            failing_since=endpoint.failing_since,
        ),
    )


async def run_deliveries(runtime: Runtime, stop: asyncio.Event) -> None:
    await DeliveryWorker(runtime.database, runtime.redis, runtime.settings).run(stop)


DELIVERY_LOOP = LoopSpec(name="webhooks.deliveries", run=run_deliveries)
