"""The receiving side: `signing.verify` agrees with the `standardwebhooks` library both ways, and
`kinfolk webhooks listen` verifies, answers and prints what a CRM developer needs to see."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from typer.testing import CliRunner

from services.cli import app
from services.kernel.event_examples import example_payload
from services.members.events import MemberCreated
from services.webhooks import signing
from services.webhooks.listen import listening

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
BODY = json.dumps(example_payload(MemberCreated)).encode()


def _theirs_accepts(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def _ours_accepts(secrets: list[str], headers: dict[str, str], body: bytes) -> bool:
    try:
        signing.verify(secrets, headers, body, datetime.now(UTC))
    except signing.SignatureInvalid:
        return False
    return True


def test_verify_accepts_what_the_standard_library_signs() -> None:
    secret, old = signing.new_secret(), signing.new_secret()
    # The library signs with an aware time here: given a naive one it takes local time as UTC.
    signature = Webhook(secret).sign("msg_1", NOW, BODY.decode())
    headers = {
        "Webhook-Id": "msg_1",  # header names are case-insensitive
        "Webhook-Timestamp": str(int(NOW.timestamp())),
        "Webhook-Signature": signature,
    }
    signing.verify([secret], headers, BODY, NOW)
    # During a rotation: the signature of a retired secret, an ed25519 `v1a` one (ignored), then
    # the current one.
    rotated = {
        **headers,
        "Webhook-Signature": f"{Webhook(old).sign('msg_1', NOW, BODY.decode())} v1a,AAAA "
        + signature,
    }
    signing.verify([secret], rotated, BODY, NOW)
    signing.verify([old, secret], headers, BODY, NOW)


def test_verify_and_the_standard_library_agree_on_every_case() -> None:
    """Signed by `signing.headers` now (the library's clock is the real one): both accept the
    genuine message and refuse each forgery."""
    secret, other = signing.new_secret(), signing.new_secret()
    now = datetime.now(UTC)
    genuine = signing.headers([secret], "msg_2", now, BODY)
    cases: dict[str, tuple[dict[str, str], bytes, bool]] = {
        "genuine": (genuine, BODY, True),
        "rotation": (signing.headers([other, secret], "msg_2", now, BODY), BODY, True),
        "tampered body": (genuine, BODY.replace(b"Ada", b"Eve"), False),
        "other secret": (signing.headers([other], "msg_2", now, BODY), BODY, False),
        "other id": ({**genuine, "webhook-id": "msg_3"}, BODY, False),
        "stale": (
            signing.headers([secret], "msg_2", now - timedelta(minutes=6), BODY),
            BODY,
            False,
        ),
        "future": (
            signing.headers([secret], "msg_2", now + timedelta(minutes=6), BODY),
            BODY,
            False,
        ),
        "no signature": (
            {k: v for k, v in genuine.items() if k != "webhook-signature"},
            BODY,
            False,
        ),
    }
    for name, (headers, body, genuine_case) in cases.items():
        assert _ours_accepts([secret], headers, body) is genuine_case, name
        assert _theirs_accepts(secret, headers, body) is genuine_case, name


def test_verify_says_what_is_wrong() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_4", NOW, BODY)

    def refusal(changed: dict[str, str], body: bytes = BODY, now: datetime = NOW) -> str:
        with pytest.raises(signing.SignatureInvalid) as caught:
            signing.verify([secret], changed, body, now)
        return str(caught.value)

    assert refusal({"webhook-id": "msg_4"}) == (
        "missing header webhook-timestamp, webhook-signature"
    )
    assert "is not a time in Unix seconds" in refusal({**headers, "webhook-timestamp": "soon"})
    assert refusal(headers, now=NOW + timedelta(minutes=6)).startswith(
        "timestamp too old: signed 360 s ago, more than the 300 s allowed"
    )
    assert refusal(headers, now=NOW - timedelta(minutes=6)).startswith(
        "timestamp too new: signed 360 s in the future"
    )
    assert refusal(headers, body=BODY + b" ").startswith(
        "no signature matches: 1 v1 signature(s) checked against 1 secret(s)"
    )
    assert refusal({**headers, "webhook-signature": "v1a,AAAA"}).startswith(
        "no v1 signature in webhook-signature"
    )
    # Within the tolerance either way is fine; a wider tolerance admits an older message.
    signing.verify([secret], headers, BODY, NOW + timedelta(minutes=5))
    signing.verify([secret], headers, BODY, NOW - timedelta(minutes=5))
    signing.verify([secret], headers, BODY, NOW + timedelta(hours=1), tolerance=timedelta(hours=2))
    with pytest.raises(ValueError, match="at least one secret"):
        signing.verify([], headers, BODY, NOW)
    assert isinstance(signing.SignatureInvalid("x"), ValueError)


async def test_the_listener_answers_204_to_a_signed_message_and_400_to_the_rest() -> None:
    secret = signing.new_secret()
    printed: list[str] = []
    async with listening(secrets=[secret], out=printed.append, clock=lambda: NOW) as listener:
        assert listener.port > 0
        async with httpx.AsyncClient(base_url=listener.url) as client:
            valid = await client.post(
                "/crm/kinfolk", content=BODY, headers=signing.headers([secret], "msg_5", NOW, BODY)
            )
            forged = await client.post(
                "/",
                content=BODY,
                headers=signing.headers([signing.new_secret()], "msg_6", NOW, BODY),
            )
            stale = await client.post(
                "/",
                content=BODY,
                headers=signing.headers([secret], "msg_7", NOW - timedelta(minutes=10), BODY),
            )
            bare = await client.post("/", content=b"hello")
            other_method = await client.get("/")

    assert [valid.status_code, forged.status_code, stale.status_code] == [204, 400, 400]
    assert valid.content == b""
    assert forged.text.startswith("no signature matches")
    assert stale.text.startswith("timestamp too old: signed 600 s ago")
    assert bare.status_code == 400
    assert bare.text == "missing header webhook-id, webhook-timestamp, webhook-signature\n"
    assert other_method.status_code == 405
    assert [(r.message_id, r.verified, r.path) for r in listener.received] == [
        ("msg_5", True, "/crm/kinfolk"),
        ("msg_6", False, "/"),
        ("msg_7", False, "/"),
        (None, False, "/"),
    ]
    assert printed[0] == "\n".join(
        [
            "--- 2026-03-14T09:30:00+00:00  POST /crm/kinfolk",
            "webhook-id: msg_5",
            "type:       member.created",
            "signature:  verified",
            json.dumps(json.loads(BODY), indent=2),
            "",
        ]
    )
    assert "signature:  REFUSED (400): no signature matches" in printed[1]
    assert "signature:  REFUSED (400): timestamp too old" in printed[2]
    assert printed[3].endswith(
        "type:       (unknown)\nsignature:  REFUSED (400): missing header "
        "webhook-id, webhook-timestamp, webhook-signature\nhello\n"
    )


async def test_without_a_secret_every_message_is_accepted_and_marked_unverified() -> None:
    printed: list[str] = []
    async with listening(out=printed.append) as listener, httpx.AsyncClient() as client:
        answer = await client.post(listener.url, content=BODY, headers={"webhook-id": "msg_8"})
    assert answer.status_code == 204
    assert [(r.message_id, r.verified, r.problem) for r in listener.received] == [
        ("msg_8", False, None)
    ]
    assert "signature:  unverified (no secret given)" in printed[0]


def test_the_command_refuses_a_malformed_secret() -> None:
    result = CliRunner().invoke(
        app, ["webhooks", "listen", "--port", "0", "--secret", "not-a-secret"]
    )
    assert result.exit_code == 2
    assert "whsec_ followed by base64" in result.output
    assert signing.is_secret(signing.new_secret())
    assert not signing.is_secret("whsec_")
    assert not signing.is_secret("whsec_***")
    assert not signing.is_secret(signing.new_secret().removeprefix("whsec_"))


async def test_the_command_listens_verifies_with_the_env_secret_and_stops_on_ctrl_c() -> None:
    secret = signing.new_secret()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFOLK_")}
    env["KINFOLK_WEBHOOK_SECRET"] = secret
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "webhooks",
        "listen",
        "--port",
        "0",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "verifying signatures with the secret" in first
        url = first.split()[2]
        now = datetime.now(UTC)
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                url + "hook", content=BODY, headers=signing.headers([secret], "msg_9", now, BODY)
            )
        assert answer.status_code == 204
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert "webhook-id: msg_9\ntype:       member.created\nsignature:  verified" in out.decode()
