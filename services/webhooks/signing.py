"""Standard Webhooks signatures: `webhook-id`, `webhook-timestamp` and `webhook-signature`
(`v1,<base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}">`, the key being the base64 after
`whsec_`), several space-separated while a rotated secret is still honoured. `verify` is the
receiver's side, for `kinfolk webhooks listen` and the tests."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
SECRET_BYTES = 32
# The spec's (and its libraries') window either side of the receiver's clock: a captured message
# replayed later is refused, since its timestamp is signed.
TOLERANCE = timedelta(minutes=5)
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class SignatureInvalid(ValueError):
    """A message that must not be trusted; the text says why."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def is_secret(text: str) -> bool:
    """`whsec_` and a non-empty base64 key: what the endpoints API hands out."""
    try:
        key = base64.b64decode(text.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        return False
    return text.startswith(SECRET_PREFIX) and bool(key)


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<signature>` entry."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    secrets_in_force: Sequence[str], message_id: str, at: datetime, body: bytes
) -> dict[str, str]:
    """The three headers of one delivery: a signature per secret in force (the current one
    first), all over the same id, timestamp and body."""
    if not secrets_in_force:
        raise ValueError("a delivery needs at least one secret")
    timestamp = int(at.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign(secret, message_id, timestamp, body) for secret in secrets_in_force
        ),
    }


def verify(
    secrets_in_force: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> None:
    """Check a received message as a Standard Webhooks receiver does: the three headers, a
    timestamp within `tolerance` of `now`, and a `v1` signature made with one of the secrets
    (compared in constant time). Raises `SignatureInvalid` saying what is wrong."""
    if not secrets_in_force:
        raise ValueError("verifying needs at least one secret")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    lowered = {name.lower(): value for name, value in headers.items()}
    missing = [name for name in HEADERS if not lowered.get(name, "").strip()]
    if missing:
        raise SignatureInvalid(f"missing header {', '.join(missing)}")
    message_id = lowered["webhook-id"].strip()
    raw_timestamp = lowered["webhook-timestamp"].strip()
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit():
        raise SignatureInvalid(f"webhook-timestamp {raw_timestamp!r} is not a time in Unix seconds")
    timestamp = int(raw_timestamp)
    skew = timestamp - now.timestamp()
    if skew < -tolerance.total_seconds():
        raise SignatureInvalid(
            f"timestamp too old: signed {-skew:.0f} s ago, more than the "
            f"{tolerance.total_seconds():.0f} s allowed (a replay, or a clock that is wrong)"
        )
    if skew > tolerance.total_seconds():
        raise SignatureInvalid(
            f"timestamp too new: signed {skew:.0f} s in the future, more than the "
            f"{tolerance.total_seconds():.0f} s allowed (a clock that is wrong)"
        )
    expected = [sign(secret, message_id, timestamp, body).encode() for secret in secrets_in_force]
    offered = [entry for entry in lowered["webhook-signature"].split(" ") if entry]
    versioned = [entry.encode() for entry in offered if entry.startswith("v1,")]
    # Every pair is compared, without stopping early, so the time taken says nothing.
    matched = False
    for candidate in versioned:
        for signature in expected:
            matched |= hmac.compare_digest(candidate, signature)
    if matched:
        return
    if not versioned:
        raise SignatureInvalid(
            f"no v1 signature in webhook-signature (found {len(offered)} of other versions)"
        )
    raise SignatureInvalid(
        f"no signature matches: {len(versioned)} v1 signature(s) checked against "
        f"{len(expected)} secret(s); is the secret the endpoint's, and the body exactly as "
        "received?"
    )
