"""The `kinfolk` command: run everything for development, or one piece as a container would."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import uuid
from collections.abc import Callable, Coroutine, Mapping
from collections.abc import Set as AbstractSet
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from services.kernel.embedded import InfrastructureUrls, infrastructure
from services.kernel.logging import configure_logging
from services.kernel.settings import Settings, get_settings, settings_refused

if TYPE_CHECKING:
    from services.kernel.consumer import ConsumerSpec

app = typer.Typer(
    help="Kinfolk: a self-hosted backend for brand communities and loyalty programs.",
    no_args_is_help=True,
    add_completion=False,
)
brand_app = typer.Typer(help="Manage brands (tenants).", no_args_is_help=True)
app.add_typer(brand_app, name="brand")
recommender_app = typer.Typer(help="Recommendation models, offline.", no_args_is_help=True)
app.add_typer(recommender_app, name="recommender")
webhooks_app = typer.Typer(help="Webhooks, from the receiving side.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
dead_letters_app = typer.Typer(
    help="Events a consumer group failed on: read them, and retry them once the cause is fixed.",
    no_args_is_help=True,
)
app.add_typer(dead_letters_app, name="dead-letters")
streams_app = typer.Typer(
    help="The event streams: how far behind each consumer group is; drop a retired group.",
    no_args_is_help=True,
)
app.add_typer(streams_app, name="streams")


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings)
    return settings


def _run(
    settings: Settings, main: Callable[[InfrastructureUrls], Coroutine[Any, Any, None]]
) -> None:
    """Start (or reuse) the infrastructure, then run `main` in an event loop."""
    with infrastructure(settings) as urls:
        asyncio.run(main(urls))


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


@app.command()
def migrate() -> None:
    """Apply every service's database migrations."""
    from services.kernel.migrations import migrate as apply
    from services.registry import SERVICES

    settings = _settings()

    async def main(urls: InfrastructureUrls) -> None:
        await apply(urls.database_url, SERVICES)
        typer.echo(f"migrated: {', '.join(s.name for s in SERVICES)}")

    _run(settings, main)


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Everything in one process: migrations, a seeded demo brand, every service, relay, workers."""
    from services.processes import run_dev

    settings = _settings()

    async def main(urls: InfrastructureUrls) -> None:
        await run_dev(settings, urls, host=host, port=port)

    _run(settings, main)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="The service to serve, e.g. members.")],
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "0.0.0.0",  # noqa: S104
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
) -> None:
    """One service alone (or `all`), as its container runs it."""
    from services.processes import serve_many, serve_one
    from services.registry import service_named

    if service != "all":
        try:
            service_named(service)
        except LookupError as exc:
            raise typer.BadParameter(str(exc), param_hint="SERVICE") from exc
    settings = _settings()

    if workers > 1:
        with infrastructure(settings) as urls:
            serve_many(settings, urls, service, host=host, port=port, workers=workers)
        return

    async def main(urls: InfrastructureUrls) -> None:
        await serve_one(settings, urls, service, host=host, port=port)

    _run(settings, main)


def _run_until_signalled(
    runner: Callable[[Settings, InfrastructureUrls, asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    settings = _settings()

    async def main(urls: InfrastructureUrls) -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await runner(settings, urls, stop)

    _run(settings, main)


@app.command()
def relay() -> None:
    """Publish every service's outbox to Redis Streams, until stopped."""
    from services.processes import run_relay

    _run_until_signalled(run_relay)


@app.command()
def worker(
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only this component (repeatable): jobs, consumers, live, or a service's "
            "loop such as webhooks.deliveries. Default: all of them.",
        ),
    ] = None,
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            help="Run only this service's jobs, consumers and loops (repeatable). Default: "
            "every service's.",
        ),
    ] = None,
) -> None:
    """Run background and scheduled jobs, every event consumer and the services' loops (webhook
    deliveries), until stopped."""
    from services.processes import run_workers, worker_components
    from services.registry import SERVICES, service_named

    try:
        services = [service_named(name) for name in service] if service else SERVICES
    except LookupError as exc:
        raise typer.BadParameter(str(exc), param_hint="--service") from exc
    chosen = tuple(only or ())
    unknown = sorted(set(chosen) - set(worker_components(services)))
    if unknown:
        known = ", ".join(worker_components(services))
        raise typer.BadParameter(
            f"unknown component(s) {', '.join(unknown)}; choose from {known}", param_hint="--only"
        )

    async def run(settings: Settings, urls: InfrastructureUrls, stop: asyncio.Event) -> None:
        await run_workers(settings, urls, stop, chosen, services)

    _run_until_signalled(run)


@brand_app.command("create")
def brand_create(
    name: Annotated[str, typer.Argument(help="The brand's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a brand and print its id and an admin API key with every scope."""
    from services.processes import create_brand_with_key

    if not name.strip():
        raise typer.BadParameter("the brand needs a name", param_hint="NAME")
    settings = _settings()

    async def main(urls: InfrastructureUrls) -> None:
        brand_id, api_key = await create_brand_with_key(urls, name.strip())
        if as_json:
            typer.echo(json.dumps({"brand_id": str(brand_id), "api_key": api_key}))
        else:
            typer.echo(f"brand id: {brand_id}\napi key:  {api_key}")
            typer.echo("Keep the key: it is shown only once.", err=True)

    _run(settings, main)


@app.command()
def token(
    brand: Annotated[str, typer.Option(help="The brand id.")],
    member: Annotated[str, typer.Option(help="The member's id or external id.")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=1)] = 3600,
) -> None:
    """Print a member JWT (for development and tests)."""
    from services.members.tokens import member_token

    try:
        brand_id = uuid.UUID(brand)
    except ValueError as exc:
        raise typer.BadParameter(
            "the brand must be a brand id (a UUID)", param_hint="--brand"
        ) from exc
    settings = _settings()

    async def main(urls: InfrastructureUrls) -> None:
        jwt = await member_token(
            settings, urls.database_url, brand_id, member, timedelta(seconds=ttl)
        )
        if jwt is None:
            typer.echo(f"no member {member!r} in brand {brand_id}", err=True)
            raise typer.Exit(code=1)
        typer.echo(jwt)

    _run(settings, main)


@app.command()
def revision(
    service: Annotated[str, typer.Argument(help="The service whose models changed.")],
    message: Annotated[str, typer.Argument(help="What the migration does.")],
) -> None:
    """Autogenerate the next migration of a service from its models."""
    from services.kernel.migrations import make_revision
    from services.kernel.migrations import migrate as apply
    from services.registry import SERVICES, service_named

    try:
        module = service_named(service)
    except LookupError as exc:
        raise typer.BadParameter(str(exc), param_hint="SERVICE") from exc
    settings = _settings()

    async def main(urls: InfrastructureUrls) -> None:
        await apply(urls.database_url, SERVICES)
        await make_revision(urls.database_url, module, message)

    _run(settings, main)


@app.command()
def schemas(
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the committed files are stale.")
    ] = False,
    allow_breaking: Annotated[
        bool,
        typer.Option(
            "--allow-breaking",
            help="Commit a GraphQL schema that breaks clients of the committed one.",
        ),
    ] = False,
) -> None:
    """Regenerate the committed contracts under schemas/ (OpenAPI, events, GraphQL schema)."""
    from services.contracts import (
        breaking_graphql_changes,
        render_contracts,
        stale_contracts,
        write_contracts,
    )

    expected = render_contracts()
    breaking = breaking_graphql_changes(expected=expected)
    for change in breaking:
        typer.echo(f"breaking GraphQL change: {change}", err=True)
    if check:
        stale = stale_contracts(expected=expected)
        for path in stale:
            typer.echo(f"stale: {path}", err=True)
        raise typer.Exit(code=1 if stale else 0)
    if breaking and not allow_breaking:
        typer.echo(
            "refusing to commit a schema that breaks existing apps: deprecate the field first, "
            "or pass --allow-breaking if the break is deliberate",
            err=True,
        )
        raise typer.Exit(code=1)
    for written in write_contracts(expected=expected):
        typer.echo(f"wrote {written}")


@app.command("simulate")
def simulate_command(
    members: Annotated[int, typer.Option("--members", help="Members to simulate.")],
    days: Annotated[int, typer.Option("--days", help="Days of activity, ending yesterday.")] = 365,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same world.")] = 1,
    brand: Annotated[
        str | None, typer.Option("--brand", help="Brand name (created if new).")
    ] = None,
    append: Annotated[
        bool, typer.Option("--append", help="Add to a brand that already has members.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the hidden truth and the run's state."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes loading side by side (default: cores)."),
    ] = None,
) -> None:
    """Simulate a beauty brand (members, purchases, hidden tastes) and load it; resumable."""
    from rich.console import Console

    from simulator.run import (
        Request,
        SimulationRefused,
        check_request,
        default_out,
        describe,
        free_disk_bytes,
        simulate,
    )

    settings = _settings()
    name = (brand or f"Simulated Beauty {seed}").strip()
    folder = out or default_out(settings.data_dir, name, seed)
    try:
        if not name:
            raise SimulationRefused("--brand needs a name")
        estimate = check_request(members, days, seed, free_disk_bytes(folder))
    except SimulationRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    console = Console(stderr=True)
    console.print(
        f"simulating {members:,} members over {days:,} days (seed {seed}): about "
        f"{estimate / 1e6:,.0f} MB; truth and state in {folder}"
    )
    request = Request(
        members=members,
        days=days,
        seed=seed,
        brand=name,
        out=folder,
        append=append,
        workers=workers or os.cpu_count() or 1,
    )

    async def main(urls: InfrastructureUrls) -> None:
        from services.kernel.migrations import migrate as apply
        from services.kernel.runtime import Runtime
        from services.registry import SERVICES

        await apply(urls.database_url, SERVICES)
        async with Runtime.open(
            settings, SERVICES, database_url=urls.database_url, redis_url=urls.redis_url
        ) as runtime:
            summary = await simulate(runtime, request, console)
        typer.echo(describe(summary))
        if not summary.complete:
            raise typer.Exit(code=1)  # scripts must not take a half-loaded brand for a whole one

    try:
        _run(settings, main)
    except SimulationRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@recommender_app.command("evaluate")
def recommender_evaluate(
    interactions: Annotated[
        Path | None,
        typer.Option(
            "--interactions",
            help="CSV with user_id,item_id[,rating|weight][,timestamp]: held-out users protocol.",
        ),
    ] = None,
    train: Annotated[
        Path | None, typer.Option("--train", help="Training CSV of a given split.")
    ] = None,
    test: Annotated[Path | None, typer.Option("--test", help="Test CSV of a given split.")] = None,
    min_rating: Annotated[
        float | None, typer.Option("--min-rating", help="Keep ratings at least this high.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same split and models.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Tune every model on validation users and measure it on test users (full-catalog ranking)."""
    from functools import partial

    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from recommender.data import DataError
    from recommender.evaluation import evaluate_given, evaluate_interactions

    def log(line: str) -> None:
        typer.echo(line, err=True)

    if interactions is not None and train is None and test is None:
        run = partial(evaluate_interactions, interactions)
    elif interactions is None and train is not None and test is not None:
        run = partial(evaluate_given, train, test)
    else:
        typer.echo(
            "error: give either --interactions FILE or both --train FILE and --test FILE", err=True
        )
        raise typer.Exit(code=2)
    try:
        # One thread for BLAS and OpenMP: multi-threaded OpenBLAS crashed on large Gram matrices
        # here, and on a shared machine spinning threads made fits several times slower.
        with threadpool_limits(limits=1):
            report = run(min_rating=min_rating, seed=seed, log=log)
    except DataError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        typer.echo("\n".join(report.lines()))


@webhooks_app.command("listen")
def webhooks_listen(
    port: Annotated[int, typer.Option(help="HTTP port (0: any free one).", min=0, max=65_535)],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="KINFOLK_WEBHOOK_SECRET",
            help="The endpoint's signing secret (whsec_...); without one nothing is verified.",
        ),
    ] = None,
) -> None:
    """A local receiver for wiring up a CRM: verifies each message's signature, answers 204 (or
    400 with the reason) and prints what arrived."""
    from services.webhooks.listen import listen
    from services.webhooks.signing import is_secret

    if secret is not None and not is_secret(secret):
        raise typer.BadParameter(
            "the secret is whsec_ followed by base64, as the endpoint's API shows it",
            param_hint="--secret",
        )

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await listen(host, port, secret, typer.echo, stop)

    try:
        asyncio.run(main())
    except OSError as exc:  # the port is taken, or the host is not this machine's
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(code=2) from exc


def _consumer_groups() -> dict[str, ConsumerSpec]:
    from services.kernel.consumer import consumer_specs
    from services.registry import SERVICES

    return {spec.name: spec for spec in consumer_specs(SERVICES)}


def _known_group(group: str | None, groups: Mapping[str, ConsumerSpec]) -> None:
    if group is not None and group not in groups:
        raise typer.BadParameter(
            f"no consumer group {group!r}; the groups are: {', '.join(sorted(groups))}",
            param_hint="--group",
        )


_GROUP_OPTION = typer.Option(
    "--group", help="Only the letters of this consumer group (e.g. rewards.activity)."
)


@dead_letters_app.command("list")
def dead_letters_list(
    group: Annotated[str | None, _GROUP_OPTION] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a letter.")] = False,
) -> None:
    """Print the parked events, oldest first: the letter, its group, the event and the error."""
    from services.kernel.dead_letters import dead_letters
    from services.kernel.runtime import redis_client

    if group is not None:
        _known_group(group, _consumer_groups())
    settings = _settings()

    async def main(urls: InfrastructureUrls) -> None:
        redis = redis_client(urls.redis_url, settings)
        try:
            letters = await dead_letters(redis, group=group)
        finally:
            await redis.aclose()
        for letter in letters:
            if as_json:
                fields = ("ref", "group", "event_id", "event_type", "deliveries", "dead_at")
                shown = {name: getattr(letter, name) for name in (*fields, "error")}
                typer.echo(json.dumps(shown))
            else:
                typer.echo(
                    f"{letter.ref}  {letter.group}  {letter.event_type} {letter.event_id}  "
                    f"{letter.deliveries} deliveries, parked {letter.dead_at}\n  {letter.error}"
                )
        if not as_json:
            typer.echo(f"{len(letters)} dead letter(s)", err=True)

    _run(settings, main)


@dead_letters_app.command("retry")
def dead_letters_retry(
    letters: Annotated[
        list[str] | None,
        typer.Argument(
            help="Letters as `list` prints them: <service>:<entry id>.", show_default=False
        ),
    ] = None,
    group: Annotated[str | None, _GROUP_OPTION] = None,
    every: Annotated[bool, typer.Option("--all", help="Every parked event.")] = False,
) -> None:
    """Retry parked events with the group that failed on them; delete those that took effect.

    Each event goes to that group alone, in its own transaction with the group's inbox, so it
    takes effect once however often it is retried. Exits 1 if any failed again.
    """
    from services.kernel.dead_letters import (
        Retried,
        dead_letters,
        dead_letters_named,
        parse_letter_ref,
        retry_dead_letters,
    )
    from services.kernel.runtime import Runtime
    from services.members.repository import MemberRepository
    from services.registry import SERVICES

    if sum((bool(letters), group is not None, every)) != 1:
        raise typer.BadParameter(
            "say which letters to retry: name them, or give --group GROUP, or --all"
        )
    for ref in letters or ():
        try:
            parse_letter_ref(ref)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="LETTERS") from exc
    groups = _consumer_groups()
    _known_group(group, groups)
    settings = _settings()

    async def main(urls: InfrastructureUrls) -> None:
        async with Runtime.open(
            settings, SERVICES, database_url=urls.database_url, redis_url=urls.redis_url
        ) as runtime:
            if letters:
                try:
                    picked = await dead_letters_named(runtime.redis, letters)
                except LookupError as exc:
                    typer.echo(f"error: {exc}", err=True)
                    raise typer.Exit(code=2) from exc
            else:
                picked = await dead_letters(runtime.redis, group=group)

            async def erased_among(ids: AbstractSet[uuid.UUID]) -> AbstractSet[uuid.UUID]:
                async with runtime.database.unit_of_work() as session:
                    return await MemberRepository(session).erased_among(ids)

            results = await retry_dead_letters(
                runtime.database, runtime.redis, list(groups.values()), picked, erased_among
            )
        for result in results:
            why = f": {result.error}" if result.error else ""
            typer.echo(
                f"{result.letter.ref}  {result.letter.group}  {result.letter.event_type}  "
                f"{result.outcome.value}{why}"
            )
        counts = dict.fromkeys(Retried, 0)
        for result in results:
            counts[result.outcome] += 1
        outcomes = ", ".join(f"{n} {outcome.value}" for outcome, n in counts.items() if n)
        typer.echo(
            f"{len(results)} dead letter(s) retried{': ' if outcomes else ''}{outcomes}", err=True
        )
        if counts[Retried.FAILED] or counts[Retried.NO_GROUP]:
            raise typer.Exit(code=1)

    _run(settings, main)


@streams_app.command("status")
def streams_status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a stream.")] = False,
) -> None:
    """Each event stream's entries, and each consumer group's lag (not read yet) and pending
    (read, not acknowledged); groups no service declares are marked retired."""
    from services.kernel.runtime import redis_client
    from services.kernel.streams import COUNTED_LAG, stream_status
    from services.registry import SERVICES

    settings = _settings()

    async def main(urls: InfrastructureUrls) -> None:
        redis = redis_client(urls.redis_url, settings)
        try:
            streams = await stream_status(redis, SERVICES)
        finally:
            await redis.aclose()
        for stream in streams:
            if as_json:
                typer.echo(json.dumps(dataclasses.asdict(stream)))
                continue
            typer.echo(f"{stream.service}: {stream.entries} entries ({stream.stream})")
            for group in stream.groups:
                lag = str(group.lag)
                if group.lag_counted and group.lag == COUNTED_LAG:
                    lag = f">={COUNTED_LAG}"
                kind = "live" if group.live else "" if group.declared else "RETIRED"
                typer.echo(
                    f"  {group.name:<32} lag {lag:>8}  pending {group.pending:>6}  "
                    f"consumers {group.consumers:>3}  {kind}".rstrip()
                )
            for name in stream.missing:
                typer.echo(f"  {name:<32} not created yet (the stream keeps everything for it)")
        retired = [(s.service, g.name) for s in streams for g in s.retired]
        for service, name in retired:
            typer.echo(
                f"{name} on {service} is declared by no service and holds its stream back: "
                f"`kinfolk streams drop-group {service} {name}` once you are sure it is gone",
                err=True,
            )

    _run(settings, main)


@streams_app.command("drop-group")
def streams_drop_group(
    service: Annotated[str, typer.Argument(help="The service whose stream it reads.")],
    group: Annotated[str, typer.Argument(help="The retired consumer group.")],
    force: Annotated[
        bool, typer.Option("--force", help="Drop it even though a process read from it lately.")
    ] = False,
) -> None:
    """Delete a consumer group no service declares any more, so its stream is trimmed again."""
    from services.kernel.runtime import redis_client
    from services.kernel.streams import drop_retired_group
    from services.registry import SERVICES

    settings = _settings()

    async def main(urls: InfrastructureUrls) -> None:
        redis = redis_client(urls.redis_url, settings)
        try:
            pending = await drop_retired_group(redis, SERVICES, service, group, force=force)
        except (ValueError, LookupError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from exc
        finally:
            await redis.aclose()
        typer.echo(f"dropped {group} from the {service} stream ({pending} pending entries with it)")

    _run(settings, main)


def main() -> None:
    try:
        app()
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        # Settings the process cannot run with (read where a command or a module first needs
        # them): which variable, and what to change; no traceback, and nothing started.
        typer.echo(settings_refused(exc), err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
