"""`kinfolk simulate`: generate a world and load it through the services' own bulk paths.

Phases, each committed before the next (and recorded in `state.json` in the run's folder):

1. world     the hidden truth is written next to the data (`truth.npz`, `truth.json`);
2. brand     the brand is created (or an existing one taken, with `--append`);
3. program   the demo's program, tiers and earning rules (services/demo/rewards.py), and one
             rewards campaign per seasonal campaign week of the world, through rewards' service
             functions (skipped when the brand already has a program); the perks the members
             redeem (simulator/redemptions.py);
4. members   chunk by chunk through `import_members` (NDJSON, COPY), one transaction a chunk;
5. events    rewards and the community learn the members from their `member.created` events,
             handed straight from the outbox to those two projections (`apply_unpublished`:
             `load_history` needs rewards' accounts, the content the community's members); the
             other consumers get the events from the relay, with the rest of the history's;
6. purchases chunk by chunk through rewards' `load_history`, with the chunk's returns and
             redemptions, one transaction a chunk;
7. community posts, comments, reactions and follows in chunks of posts through the community's
             `load_posts` (simulator/community.py), one transaction a chunk;
8. happenings prompts and answers (`load_answers`), experiences with their past and next
             weeks' sessions, bookings, check-ins and reviews (`SessionsReplay`), chunk by chunk
             (simulator/happenings.py).

The chunks of members, purchases, the community, answers and sessions load in `--workers`
processes side by side (simulator/workers.py); a chunk does not depend on the others of its
phase.
9. settled   every event of the load (the members', the purchases' and the content's: tier
             changes, content points, reputation, milestones, marketing's and the recommender's
             stores, webhooks) drained in process for small worlds; for large ones they are left
             to the relay and workers.

A rerun with the same parameters resumes after the last committed chunk. A chunk committed just
before a crash, whose state was not written, is recognised (its members or orders exist) and
skipped, so nothing is loaded twice. Until the last phase ends, `state.json` says `complete: false`
and the run's summary says what is missing: a half-loaded brand never looks complete.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.members.projection import MEMBERS_PROJECTION as COMMUNITY_MEMBERS
from services.demo.members import CATEGORIES
from services.demo.rewards import PROGRAM, RULES, TIERS
from services.kernel.collector import collector_paused
from services.kernel.drain import apply_unpublished, drain_events
from services.kernel.runtime import Runtime
from services.members import service as members_service
from services.registry import SERVICES
from services.rewards.earning import service as earning
from services.rewards.earning.schemas import CampaignCreate, RuleCreate
from services.rewards.errors import ProgramNotConfigured
from services.rewards.ledger import service as ledger
from services.rewards.ledger.projection import MEMBERS_PROJECTION as REWARDS_MEMBERS
from services.rewards.ledger.schemas import ProgramSettings
from services.rewards.tiers import service as tiers_service
from services.rewards.tiers.schemas import TierCreate
from simulator import world
from simulator.chunks import WorldView, load_members_chunk, load_purchases_chunk
from simulator.community import load_community
from simulator.happenings import load_happenings
from simulator.redemptions import configure_perks
from simulator.truth import Truth, write_truth
from simulator.workers import ChunkLoader, load_chunks

STATE_FILE = "state.json"
STATE_FORMAT = 1
PHASES = (
    "world",
    "brand",
    "program",
    "members",
    "events",
    "purchases",
    "community",
    "happenings",
    "settled",
)
# The projections the later phases need filled in the events phase: rewards' accounts (for the
# purchases) and the community's members (for the content).
PROJECTIONS = frozenset({REWARDS_MEMBERS.name, COMMUNITY_MEMBERS.name})
# Up to this many members, the load's events are drained in process too; past it, they wait in
# the outboxes for the relay and workers. A year's history makes about 224 messages a member
# (4,000 members: 896,019), drained at about 5,000 a second here (178.7 s): this cap settles in
# about four minutes, where the earlier cap of 50,000 would have taken over half an hour.
SETTLE_MEMBERS = 5_000

# Limits past which a request is refused before anything is generated.
MAX_MEMBERS = 50_000_000
MAX_DAYS = 3_650  # ten years: tiers, expiry and seasons are modelled per year

# Database bytes per member and per purchase, measured on a 20,000-member, 365-day run into an
# empty database (50,774 purchases; 396 MB by pg_database_size, indexes and outboxes included),
# table by table, rounded up. A member: its row, its `member.created` outbox row, rewards' and
# the community's projections and inboxes (3.5 kB). A purchase: its row, ledger entries, lots,
# tier changes and rewards' outbox events, which are most of it (6.4 kB).
BYTES_PER_MEMBER = 3_600
BYTES_PER_PURCHASE = 6_600
# The truth file: the external id (numpy stores 4 bytes a character), tastes and the rest.
TRUTH_BYTES_PER_MEMBER = 4 * 16 + 8 * len(CATEGORIES) + 8 * 3 + 4 * 2 + 1
# Headroom kept free on the disk: a database that fills its disk stops every service.
DISK_HEADROOM = 1.25


class SimulationRefused(Exception):
    """A request that cannot run as asked (bad input, a brand with data, another run's state);
    the message says what to do. The CLI prints it and exits with code 2."""


@dataclass(frozen=True, slots=True)
class Request:
    members: int
    days: int
    seed: int
    brand: str
    out: Path
    append: bool = False
    start: date | None = None  # day 0; default: so that the last simulated day is yesterday
    chunk_members: int = 20_000
    workers: int = 1  # processes loading chunks side by side (not part of the world)
    # Drain the loaded history's events in process at the end (small worlds only); a caller
    # whose relay and workers are about to run (`kinfolk dev`) leaves them to those.
    settle: bool = True


@dataclass
class RunState:
    """What has been committed so far; written after each phase and chunk."""

    params: dict[str, Any]
    brand: str
    append: bool
    brand_id: str | None = None
    created_brand: bool = False
    phases: list[str] = field(default_factory=list)
    members_chunks: int = 0
    purchase_chunks: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    complete: bool = False

    @classmethod
    def read(cls, path: Path) -> RunState | None:
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        if saved.get("format") != STATE_FORMAT:
            raise SimulationRefused(
                f"{path}: unknown state format; remove the folder to start over"
            )
        saved.pop("format")
        return cls(**saved)

    def write(self, path: Path) -> None:
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps({"format": STATE_FORMAT, **asdict(self)}, indent=2) + "\n")
        partial.replace(path)  # atomic: a crash leaves the old state or the new, never half


@dataclass(frozen=True, slots=True)
class Summary:
    brand_id: uuid.UUID
    api_key: str | None  # only when this run created the brand
    members: int
    purchases: int
    content: dict[str, int]  # posts, comments, reactions, follows, answers, sessions, bookings
    events: int
    complete: bool
    missing: list[str]
    seconds: float
    phase_seconds: dict[str, float]  # phases this call ran (a resumed run skips the done ones)
    database_bytes: int
    out: Path


def default_out(data_dir: Path, brand: str, seed: int) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", brand.lower()).strip("-") or "brand"
    return data_dir / "simulations" / f"{slug}-seed{seed}"


def default_start(days: int, today: date | None = None) -> date:
    return (today or datetime.now(UTC).date()) - timedelta(days=days)


def estimate_bytes(params: world.WorldParams) -> int:
    """The database and truth file size of a run, from its parameters alone."""
    orders = world.expected_orders(params)
    return math.ceil(
        params.members * (BYTES_PER_MEMBER + TRUTH_BYTES_PER_MEMBER) + orders * BYTES_PER_PURCHASE
    )


def check_request(members: int, days: int, seed: int, free_bytes: int) -> int:
    """Refuses what cannot or should not run; returns the size estimate in bytes."""
    if members < 1:
        raise SimulationRefused(f"--members must be at least 1 (got {members})")
    if days < 1:
        raise SimulationRefused(f"--days must be at least 1 (got {days})")
    if seed < 0:
        raise SimulationRefused(f"--seed must be zero or more (got {seed})")
    if members > MAX_MEMBERS:
        raise SimulationRefused(f"--members must be at most {MAX_MEMBERS:,} (got {members:,})")
    if days > MAX_DAYS:
        raise SimulationRefused(f"--days must be at most {MAX_DAYS:,} (got {days:,})")
    params = world.WorldParams(members=members, days=days, seed=seed, start=date(2000, 1, 1))
    estimate = estimate_bytes(params)
    if estimate * DISK_HEADROOM > free_bytes:
        raise SimulationRefused(
            f"{members:,} members over {days:,} days need about {_size(estimate)} "
            f"(plus {DISK_HEADROOM - 1:.0%} headroom), but only {_size(free_bytes)} is free: "
            "simulate fewer members or days, or free some disk"
        )
    return estimate


def free_disk_bytes(path: Path) -> int:
    """Free space on the disk that holds `path` (or its nearest existing parent)."""
    probe = path.resolve()
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def _progress(console: Console | None) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None,
        transient=False,
    )


class _Run:
    """One `simulate` call: the request, its world, its state file and its progress bars."""

    def __init__(self, runtime: Runtime, request: Request, console: Console | None) -> None:
        self.runtime = runtime
        self.request = request
        self.console = console
        self.path = request.out / STATE_FILE
        self.api_key: str | None = None
        self.events = 0
        self.timings: dict[str, float] = {}
        self.state = self._start_state()
        self.params = world.WorldParams.from_json(self.state.params)
        self.view = WorldView.of(self.params)

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = time.perf_counter() - started

    def say(self, message: str) -> None:
        if self.console is not None:
            self.console.print(message)

    def _start_state(self) -> RunState:
        request = self.request
        saved = RunState.read(self.path)
        start = request.start or (
            date.fromisoformat(saved.params["start"])
            if saved is not None
            else default_start(request.days)
        )
        params = world.WorldParams(
            members=request.members,
            days=request.days,
            seed=request.seed,
            start=start,
            chunk_members=request.chunk_members,
        )
        if saved is None:
            return RunState(params=params.to_json(), brand=request.brand, append=request.append)
        if saved.params != params.to_json() or saved.brand != request.brand:
            raise SimulationRefused(
                f"{request.out} holds another run ({saved.brand!r}, "
                f"{saved.params['members']:,} members, {saved.params['days']} days, seed "
                f"{saved.params['seed']}, start {saved.params['start']}): rerun that one to "
                "finish it, or pass another --out"
            )
        if saved.complete:
            raise SimulationRefused(
                f"this run is already complete (brand {saved.brand_id}, see {self.path}): "
                "nothing to do; pass another --out or --seed for a new one"
            )
        return saved

    def save(self, phase: str | None = None) -> None:
        if phase is not None and phase not in self.state.phases:
            self.state.phases.append(phase)
        self.request.out.mkdir(parents=True, exist_ok=True)
        self.state.write(self.path)

    def done(self, phase: str) -> bool:
        return phase in self.state.phases

    @property
    def brand_id(self) -> uuid.UUID:
        assert self.state.brand_id is not None
        return uuid.UUID(self.state.brand_id)

    async def run(self) -> Summary:
        started = time.perf_counter()
        if not self.done("world"):
            write_truth(
                self.request.out, Truth.of(self.params, self.view.members, self.view.catalog)
            )
            self.save("world")
        await self._brand()
        with self._timed("program"):
            await self._program()
        with _progress(self.console) as progress:
            with self._timed("members"):
                await self._members(progress)
            with self._timed("events"):
                await self._events(progress)
            with self._timed("purchases"):
                await self._purchases(progress)
            with self._timed("community"):
                await self._community(progress)
            with self._timed("happenings"):
                await self._happenings(progress)
            with self._timed("settled"):
                await self._settle(progress)
        missing = [phase for phase in PHASES if phase not in self.state.phases]
        self.state.complete = not missing
        self.save()
        async with self.runtime.database.unit_of_work() as session:
            size = int(
                await session.scalar(text("SELECT pg_database_size(current_database())")) or 0
            )
        return Summary(
            brand_id=self.brand_id,
            api_key=self.api_key,
            members=self.state.counts.get("members", 0),
            purchases=self.state.counts.get("purchases", 0),
            content={
                kind: self.state.counts.get(kind, 0)
                for kind in (
                    "posts",
                    "comments",
                    "reactions",
                    "follows",
                    "answers",
                    "sessions",
                    "upcoming_sessions",
                    "confirmed",
                )
            },
            events=self.events,
            complete=self.state.complete,
            missing=missing,
            seconds=time.perf_counter() - started,
            phase_seconds=dict(self.timings),
            database_bytes=size,
            out=self.request.out,
        )

    async def _brand(self) -> None:
        if self.done("brand"):
            async with self.runtime.database.unit_of_work() as session:
                if await members_service.get_brand(session, self.brand_id) is None:
                    raise SimulationRefused(
                        f"brand {self.brand_id} of this run no longer exists: remove "
                        f"{self.request.out} to start over"
                    )
            return
        async with self.runtime.database.unit_of_work() as session:
            found = await members_service.brands_named(session, self.request.brand)
            if len(found) > 1:
                raise SimulationRefused(
                    f"{len(found)} brands are named {self.request.brand!r}: pick a unique name"
                )
            if found:
                brand = found[0]
                if (
                    await members_service.brand_has_members(session, brand.id)
                    and not self.request.append
                ):
                    raise SimulationRefused(
                        f"brand {self.request.brand!r} ({brand.id}) already has members: pass "
                        "--append to add this world's members to it, or pick another --brand"
                    )
                first = world.external_id(self.params.seed, 0)
                if await members_service.member_ids(session, brand.id, [first]):
                    raise SimulationRefused(
                        f"brand {self.request.brand!r} already has this seed's members "
                        f"({first}, …): pick another --seed to append more"
                    )
            else:
                brand, self.api_key = await members_service.create_brand(
                    session, self.request.brand
                )
                self.state.created_brand = True
                # Now, not only in the summary: a run that stops later must not lose the key.
                self.say(f"brand {brand.id}, staff API key (shown once): {self.api_key}")
        self.state.brand_id = str(brand.id)
        self.save("brand")

    async def _program(self) -> None:
        if self.done("program"):
            return
        async with self.runtime.database.unit_of_work() as session:
            try:
                program = await ledger.program_for(session, self.brand_id)
            except ProgramNotConfigured:
                await configure_program(session, self.brand_id, self.params)
            else:
                self.say(
                    f"the brand already has a program ({program.currency}): kept as it is, "
                    "with its tiers, rules and campaigns"
                )
            # The perks the world's members redeem (those missing, with --append too).
            await configure_perks(session, self.brand_id)
        self.save("program")

    async def _members(self, progress: Progress) -> None:
        task = progress.add_task(
            "members", total=self.params.members, completed=self._loaded(self.state.members_chunks)
        )
        if self.done("members"):
            return
        await self._chunked("members", task, progress)
        self.save("members")

    async def _chunked(
        self, phase: Literal["members", "purchases"], task: TaskID, progress: Progress
    ) -> None:
        """Loads the phase's chunks not yet recorded as done (in worker processes when asked),
        recording each as it commits. The state keeps a low-water mark: every chunk below it is
        done; chunks above it that committed before a crash are recognised and skipped."""
        mark = "members_chunks" if phase == "members" else "purchase_chunks"
        first = getattr(self.state, mark)
        finished: set[int] = set()
        loaded_members = self._loaded(first)
        loader: ChunkLoader = load_members_chunk
        args: tuple[str, ...] = ()
        if phase == "purchases":
            async with self.runtime.database.unit_of_work() as session:
                # The brand's currency: with --append, an existing program may not be the demo's.
                args = ((await ledger.program_for(session, self.brand_id)).currency,)
            loader = load_purchases_chunk
        async for chunk, loaded in load_chunks(
            loader,
            self.runtime.database,
            self.view,
            self.brand_id,
            range(first, self.params.chunks),
            workers=self.request.workers,
            args=args,
        ):
            finished.add(chunk)
            while getattr(self.state, mark) in finished:
                setattr(self.state, mark, getattr(self.state, mark) + 1)
            low, high = self.params.chunk_range(chunk)
            loaded_members += high - low
            if phase == "members":
                self.state.counts["members"] = self._loaded(self.state.members_chunks)
            else:
                self.state.counts["purchases"] = (
                    self.state.counts.get("purchases", 0) + loaded["purchases"]
                )
            self.save()
            progress.update(task, completed=loaded_members)

    def _loaded(self, chunks: int) -> int:
        return min(chunks * self.params.chunk_members, self.params.members)

    async def _events(self, progress: Progress) -> None:
        if self.done("events"):
            return
        # Only the projections the next phases read, straight from the outboxes (other brands'
        # unpublished events too): a million members' events through every consumer group
        # would take most of the run. With the collector paused (the process does nothing else
        # meanwhile): its passes over each batch's parsed events took 40% of the phase.
        task = progress.add_task("events", total=None)
        with collector_paused():
            self.events += await apply_unpublished(self.runtime.database, SERVICES, PROJECTIONS)
        progress.update(task, total=self.events, completed=self.events)
        self.save("events")

    async def _community(self, progress: Progress) -> None:
        """Posts, comments, reactions and follows through the community's bulk path, after the
        purchases: the content's points land in accounts whose history is already loaded."""
        if self.done("community"):
            return
        task = progress.add_task("community", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        counts = await load_community(
            self.runtime,
            self.params,
            self.view.members,
            self.brand_id,
            advance,
            workers=self.request.workers,
        )
        self.state.counts["posts"] = counts.posts
        self.state.counts["comments"] = counts.comments
        self.state.counts["reactions"] = counts.reactions
        self.state.counts["follows"] = counts.follows
        self.save("community")

    async def _happenings(self, progress: Progress) -> None:
        """The brand's prompts and their answers, its experiences and their sessions, bookings,
        check-ins and reviews (simulator/happenings.py), sessions in the next two weeks too."""
        if self.done("happenings"):
            return
        task = progress.add_task("happenings", total=None)
        counts = await load_happenings(
            self.runtime,
            self.params,
            self.view.members,
            self.brand_id,
            workers=self.request.workers,
        )
        for kind in ("prompts", "answers", "sessions", "upcoming_sessions", "confirmed"):
            self.state.counts[kind] = getattr(counts, kind)
        progress.update(task, total=counts.answers, completed=counts.answers)
        self.save("happenings")

    async def _settle(self, progress: Progress) -> None:
        if self.done("settled"):
            return
        if self.request.settle and self.params.members <= SETTLE_MEMBERS:
            task = progress.add_task("settling", total=None)
            handled = await drain_events(self.runtime, SERVICES, "simulate")
            self.events += handled
            progress.update(task, total=handled, completed=handled)
        else:
            self.say(
                "the loaded history's events (tier changes, content points, reputation, ...) are "
                "in the outboxes: the relay and workers (`kinfolk relay`, `kinfolk worker`, or "
                "`kinfolk dev`) deliver them"
            )
        self.save("settled")

    async def _purchases(self, progress: Progress) -> None:
        task = progress.add_task(
            "purchases",
            total=self.params.members,
            completed=self._loaded(self.state.purchase_chunks),
        )
        if self.done("purchases"):
            return
        await self._chunked("purchases", task, progress)
        self.save("purchases")


async def configure_program(
    session: AsyncSession, brand_id: uuid.UUID, params: world.WorldParams
) -> None:
    """The demo's program, tiers and rules, and a points campaign for each campaign week."""
    await ledger.configure_program(session, brand_id, ProgramSettings.model_validate(PROGRAM))
    for tier in TIERS:
        await tiers_service.create_tier(session, brand_id, TierCreate.model_validate(tier))
    rule_adapter: TypeAdapter[Any] = TypeAdapter(RuleCreate)
    for rule in RULES:
        await earning.create_rule(session, brand_id, rule_adapter.validate_python(rule))
    for window in world.campaign_windows(params):
        campaign = window.campaign
        await earning.create_campaign(
            session,
            brand_id,
            CampaignCreate(
                name=f"{campaign.name} {window.starts_at(params).year}",
                starts_at=window.starts_at(params),
                ends_at=window.ends_at(params),
                categories=[campaign.category],
                multiplier=Decimal(campaign.points_multiplier),
            ),
        )


async def simulate(runtime: Runtime, request: Request, console: Console | None = None) -> Summary:
    """Generate the world of `request` and load it (or resume loading it) into its brand."""
    return await _Run(runtime, request, console).run()


def describe_content(content: dict[str, int]) -> str:
    """What a run loaded into the community, counted: "5,604 posts, 7,751 comments, ..."."""
    labels = {"upcoming_sessions": "sessions to come", "confirmed": "bookings"}
    return ", ".join(f"{count:,} {labels.get(kind, kind)}" for kind, count in content.items())


def describe(summary: Summary) -> str:
    phases = ", ".join(f"{name} {took:,.1f} s" for name, took in summary.phase_seconds.items())
    content = describe_content(summary.content)
    lines = [
        f"brand id       {summary.brand_id}",
        *([f"staff API key  {summary.api_key}  (shown once)"] if summary.api_key else []),
        f"members        {summary.members:,}",
        f"purchases      {summary.purchases:,}",
        f"community      {content}",
        f"truth          {summary.out}",
        f"elapsed        {summary.seconds:,.1f} s",
        f"phases         {phases}",
        f"database size  {_size(summary.database_bytes)}",
    ]
    if not summary.complete:
        lines.append(
            f"INCOMPLETE     not done: {', '.join(summary.missing)}; rerun the same command"
        )
    return "\n".join(lines)
