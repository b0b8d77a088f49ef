"""Signatures as the Standard Webhooks spec has them, checked by the spec's own library: every
delivery verifies with the endpoint's secret, and during a rotation with the old one too."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.webhooks import signing


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first.startswith("whsec_")
    assert first != second
    assert len(signing._key(first)) == 32


def test_the_standard_library_verifies_every_signature_in_force() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    at = datetime.now(UTC)
    body = json.dumps({"type": "points.earned", "data": {"points": 120}}).encode()
    headers = signing.headers([new, old], "msg_01", at, body)
    assert headers["webhook-id"] == "msg_01"
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (new, old):
        assert Webhook(secret).verify(body, headers) == {
            "type": "points.earned",
            "data": {"points": 120},
        }
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    tampered = body.replace(b"120", b"999")
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(tampered, headers)
    # A replay outside the library's five-minute tolerance is refused by the receiver.
    stale = signing.headers([new], "msg_01", at - timedelta(minutes=10), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body, stale)


def test_a_delivery_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signing.headers([], "msg", datetime.now(UTC), b"{}")
