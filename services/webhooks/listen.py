"""`kinfolk webhooks listen`: a local receiver for people wiring a CRM to Kinfolk's webhooks.

It accepts a POST on any path, verifies the Standard Webhooks signature with the endpoint's
secret (`signing.verify`), answers 204 when the message is genuine and 400 with the reason when
it is not (so the attempt log shows why), and prints one block per message. Without a secret it
answers 204 to everything and says that nothing was verified.

`listening()` runs it on a port (0: a free one) inside an event loop, for the command and for
tests; the command runs it until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from services.kernel.clock import utcnow
from services.webhooks import signing

Printer = Callable[[str], None]
Clock = Callable[[], datetime]
# Larger than any message Kinfolk sends; a bigger body is refused before it is read.
MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Received:
    """One request, as printed."""

    at: datetime
    path: str
    message_id: str | None
    event_type: str | None
    verified: bool
    problem: str | None  # why it was refused; None when verified, or when there is no secret
    body: bytes


@dataclass
class Listener:
    """The bound address and what arrived so far (in arrival order)."""

    host: str
    port: int
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


def _event_type(body: bytes) -> tuple[str | None, object]:
    """The message's `type` and its parsed JSON (or None when the body is not JSON)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None, None
    event_type = document.get("type") if isinstance(document, dict) else None
    return (event_type if isinstance(event_type, str) else None), document


def render(received: Received, document: object, verifying: bool) -> str:
    """The printed block: time, path, id, type, the verdict, then the body pretty-printed."""
    if received.verified:
        verdict = "verified"
    elif verifying:
        verdict = f"REFUSED (400): {received.problem}"
    else:
        verdict = "unverified (no secret given)"
    if document is not None:
        shown = json.dumps(document, indent=2, ensure_ascii=False)
    else:
        shown = received.body.decode("utf-8", errors="replace") or "(empty body)"
    return "\n".join(
        [
            f"--- {received.at.isoformat(timespec='seconds')}  POST {received.path}",
            f"webhook-id: {received.message_id or '(none)'}",
            f"type:       {received.event_type or '(unknown)'}",
            f"signature:  {verdict}",
            shown,
            "",
        ]
    )


def _application(
    listener: Listener, secrets: Sequence[str], out: Printer, clock: Clock
) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        at = clock()
        problem: str | None = None
        if secrets:
            try:
                signing.verify(secrets, request.headers, body, at)
            except signing.SignatureInvalid as exc:
                problem = str(exc)
        event_type, document = _event_type(body)
        received = Received(
            at=at,
            path=request.path_qs,
            message_id=request.headers.get("webhook-id"),
            event_type=event_type,
            verified=bool(secrets) and problem is None,
            problem=problem,
            body=body,
        )
        listener.received.append(received)
        out(render(received, document, verifying=bool(secrets)))
        if problem is not None:
            return web.Response(status=400, text=problem + "\n")
        return web.Response(status=204)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/{path:.*}", receive)
    return app


@asynccontextmanager
async def listening(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    secrets: Sequence[str] = (),
    out: Printer = print,
    clock: Clock = utcnow,
) -> AsyncIterator[Listener]:
    """Serve until the block ends; yields the bound port (a free one for `port=0`)."""
    listener = Listener(host=host, port=port)
    runner = web.AppRunner(
        _application(listener, secrets, out, clock), access_log=None, handle_signals=False
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        listener.port = runner.addresses[0][1]
        yield listener
    finally:
        await runner.cleanup()


async def listen(
    host: str, port: int, secret: str | None, out: Printer, stop: asyncio.Event
) -> None:
    """What `kinfolk webhooks listen` runs: print where it listens, then serve until `stop`."""
    secrets = [secret] if secret else []
    async with listening(host=host, port=port, secrets=secrets, out=out) as listener:
        if secrets:
            out(f"listening on {listener.url} (any path); verifying signatures with the secret")
        else:
            out(
                f"listening on {listener.url} (any path); no secret given, so messages are "
                "printed UNVERIFIED (pass --secret or set KINFOLK_WEBHOOK_SECRET)"
            )
        out("Ctrl-C to stop.\n")
        await stop.wait()
