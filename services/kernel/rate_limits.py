"""Rate limits per member and per staff API key (and per webhook endpoint, whose sends wait
rather than being refused), counted in Redis over a sliding window.

Each principal (a member, by its token's brand and subject; a staff key, by its key id) has a
budget of requests per window (a minute). The count is Cloudflare's sliding-window counter: one
counter per principal and fixed window, and a request at time t into the current window sees

    estimate = previous window's count * (window - t) / window + current window's count

which follows a true sliding window closely while costing two small keys per principal, where a
log of timestamps would keep one entry per request. The check and the count are one Lua script:
one Redis round trip per request, atomic, so concurrent requests of one principal in any number
of processes never overshoot the limit. A refused request is not counted, so a client that keeps
retrying while refused gets in as soon as its window allows, not later.

Principals are counted apart, each under keys of its own: a flood from one member or one key only
ever exhausts that principal's budget.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from services.kernel.auth import MemberPrincipal, Principal, StaffPrincipal
from services.kernel.errors import KinfolkError

WINDOW_SECONDS = 60

KEY_PREFIX = "kinfolk:ratelimit:"

# KEYS[1]: the current window's counter; KEYS[2]: the previous window's.
# ARGV[1]: the limit; ARGV[2]: the window (ms); ARGV[3]: how far into the current window we are
# (ms). Returns {allowed (0/1), current count (after this request when allowed), previous count}.
# Compared in integers (everything times the window) so no float rounding decides a request.
_SLIDING_WINDOW = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local elapsed = tonumber(ARGV[3])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
if previous * (window - elapsed) + (current + 1) * window > limit * window then
  return {0, current, previous}
end
current = redis.call('INCR', KEYS[1])
if current == 1 then
  -- Kept through the next window too, where it is that window's `previous`.
  redis.call('PEXPIRE', KEYS[1], 2 * window)
end
return {1, current, previous}
"""


class RateLimited(KinfolkError):
    """Too many requests: wait `Retry-After` seconds."""

    status_code = 429
    code = "RateLimited"


@dataclass(frozen=True, slots=True)
class Bucket:
    """Whose budget a request spends, and how large it is."""

    key: str  # the principal, as it appears in Redis keys
    limit: int  # requests per window; at least 1
    kind: str  # "member" or "api_key", for metrics
    who: str  # for the refusal's message: "this member", "this API key"


def bucket_for(principal: Principal, *, member_limit: int, api_key_limit: int) -> Bucket | None:
    """The principal's bucket; None when its kind is not limited (a limit of 0)."""
    if isinstance(principal, MemberPrincipal):
        if member_limit <= 0:
            return None
        return Bucket(
            _member_key(principal.brand_id, principal.member_id),
            member_limit,
            "member",
            "this member",
        )
    if isinstance(principal, StaffPrincipal):
        if api_key_limit <= 0:
            return None
        return Bucket(_api_key_key(principal.key_id), api_key_limit, "api_key", "this API key")
    return None  # pragma: no cover - Principal has no other kind


def _member_key(brand_id: uuid.UUID, member_id: uuid.UUID) -> str:
    return f"member:{brand_id}:{member_id}"


def _api_key_key(key_id: uuid.UUID) -> str:
    return f"key:{key_id}"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int  # requests left in the sliding window after this one (0 when refused)
    retry_after: int  # whole seconds until a request would be allowed; 0 when allowed
    retry_after_ms: float = 0.0  # the same, exactly: for a caller that waits rather than refuses


class RateLimiter:
    """Counts requests per bucket in Redis. `clock` is seconds since the epoch (tests fake it).

    Windows are aligned on the wall clock, so every process agrees on them as far as their
    clocks agree; a skew of a second moves a request at most a second's worth of weight.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        window_seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.window_ms = int(window_seconds * 1000)
        self.clock = clock
        self._script = redis.register_script(_SLIDING_WINDOW)

    def keys(self, bucket: Bucket, now_ms: int) -> tuple[str, str]:
        """The current and previous window's counters. The braces make both one Redis Cluster
        hash slot, as a script's keys must be."""
        window = now_ms // self.window_ms
        base = f"{KEY_PREFIX}{{{bucket.key}}}:"
        return f"{base}{window}", f"{base}{window - 1}"

    async def hit(self, bucket: Bucket) -> Decision:
        """Count one request against `bucket`, unless it is over its limit (then refused)."""
        now_ms = int(self.clock() * 1000)
        elapsed = now_ms % self.window_ms
        allowed, current, previous = await self._script(
            keys=list(self.keys(bucket, now_ms)),
            args=[bucket.limit, self.window_ms, elapsed],
        )
        allowed, current, previous = int(allowed), int(current), int(previous)
        if allowed:
            estimate = previous * (self.window_ms - elapsed) / self.window_ms + current
            return Decision(True, bucket.limit, max(0, math.floor(bucket.limit - estimate)), 0)
        wait_ms = retry_after_ms(bucket.limit, self.window_ms, elapsed, current, previous)
        return Decision(False, bucket.limit, 0, max(1, math.ceil(wait_ms / 1000)), wait_ms)


def retry_after_ms(limit: int, window: int, elapsed: int, current: int, previous: int) -> float:
    """How long until a refused request would be allowed, with no other request meanwhile."""
    if current + 1 <= limit:
        # This window has room; the previous window's share refuses, and it shrinks as this
        # window goes on: allowed once previous * (window - x) / window + current + 1 <= limit.
        at = window - (limit - current - 1) * window / previous
        return max(0.0, at - elapsed)
    # This window is full. In the next one it is the previous window, weighing less and less:
    # allowed once current * (window - x) / window + 1 <= limit.
    at_next = window - (limit - 1) * window / current
    return window - elapsed + max(0.0, at_next)


def refusal(bucket: Bucket, decision: Decision) -> RateLimited:
    return RateLimited(
        f"Too many requests for {bucket.who}: the limit is {bucket.limit} a minute; "
        f"try again in {decision.retry_after} s.",
        headers={"Retry-After": str(decision.retry_after)},
    )
