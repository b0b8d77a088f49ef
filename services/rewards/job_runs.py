"""Daily jobs that work through every brand's members (expiry, reminders, the tier review, the
birthday points and gifts) in runs of a bounded size.

A job is one transaction, and it keeps every member it took locked until it commits: over a
brand of a million members, their purchases would wait for the whole job. So a run takes at most
`RunLimit.members` members, in batches, across brands in id order and members in id order; with
work left it says where it stopped (`Resume`), and the job returns `kernel.jobs.Continue` so the
kernel commits the run and queues the next one from there, with the first run's `now`: what the
runs write is dated as one run would have dated it. Should the next run fail to be queued (Redis
away just then), the next scheduled run does what was left.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from services.kernel.clock import utcnow
from services.kernel.jobs import Continue

# Members one run locks until it commits: a few seconds of work.
MEMBERS_PER_RUN = 5_000


class _OfABrand(Protocol):
    @property
    def brand_id(self) -> uuid.UUID: ...


Brand = TypeVar("Brand", bound=_OfABrand)
Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a run that stopped at its limit left off: the next member of this brand after
    `after` (None: the brand's first)."""

    brand_id: uuid.UUID
    after: uuid.UUID | None

    def to_json(self) -> dict[str, str | None]:
        return {"brand_id": str(self.brand_id), "after": str(self.after) if self.after else None}

    @classmethod
    def from_json(cls, raw: dict[str, str | None]) -> Resume:
        brand, after = raw["brand_id"], raw["after"]
        if brand is None:
            raise ValueError("a resume point names a brand")
        return cls(uuid.UUID(brand), uuid.UUID(after) if after else None)


@dataclass(slots=True)
class RunLimit:
    """How far one run goes: from `start`, until it has taken `members` (it finishes the batch
    it is in; None: no limit). A run that stopped with work left sets `resume`."""

    members: int | None = None
    start: Resume | None = None
    taken: int = 0
    resume: Resume | None = None

    @property
    def spent(self) -> bool:
        return self.members is not None and self.taken >= self.members

    def brands(self, brands: Sequence[Brand]) -> list[Brand]:
        """The brands (programs, in brand id order) this run starts from."""
        first = self.start.brand_id if self.start is not None else None
        return [b for b in brands if first is None or b.brand_id >= first]

    def stop_before(self, brand: _OfABrand) -> bool:
        """Whether the run ends before this brand (work may be left in it)."""
        if self.spent and self.resume is None:
            self.resume = Resume(brand.brand_id, None)
        return self.resume is not None


async def in_batches(
    fetch: Callable[[uuid.UUID | None], Awaitable[list[Row]]],
    handle: Callable[[list[Row]], Awaitable[None]],
    batch_size: int,
    brand_id: uuid.UUID,
    limit: RunLimit,
    *,
    member_of: Callable[[Row], uuid.UUID],
) -> None:
    """Keyset over a brand's members: `fetch(after)` gives the rows of the next batch (in member
    id order), `handle` deals with them; from where `limit` starts in this brand, until it is
    spent."""
    start = limit.start
    after = start.after if start is not None and start.brand_id == brand_id else None
    while True:
        rows = await fetch(after)
        if not rows:
            return
        await handle(rows)
        limit.taken += len(rows)
        if len(rows) < batch_size:
            return
        after = member_of(rows[-1])
        if limit.spent:
            limit.resume = Resume(brand_id, after)
            return


def itself(member_id: uuid.UUID) -> uuid.UUID:
    """`member_of` for batches that are member ids."""
    return member_id


class RunWork(Protocol):
    """A job's work over every brand's members, as far as `limit` goes: how much it did."""

    def __call__(self, *, now: datetime, batch_size: int, limit: RunLimit) -> Awaitable[int]: ...


async def one_run(
    work: RunWork, *, now: datetime | None, resume: dict[str, Any] | None, largest_batch: int
) -> int | Continue:
    """One run of a job: `work` from where the run before stopped (`resume`), at most
    MEMBERS_PER_RUN members in batches of at most `largest_batch`; what the job returns: what
    the run did, and, with work left, the next run from where this one stopped, at this run's
    `now` (the first run's, carried along)."""
    moment = now or utcnow()
    limit = RunLimit(MEMBERS_PER_RUN, Resume.from_json(resume) if resume is not None else None)
    done = await work(now=moment, batch_size=min(largest_batch, MEMBERS_PER_RUN), limit=limit)
    if limit.resume is None:
        return done
    return Continue({"now": moment, "resume": limit.resume.to_json()}, done)
