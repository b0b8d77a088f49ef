"""The fingerprint an idempotency key is checked against (`idempotency.request_hash`)."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel

from services.kernel.idempotency import request_hash


class Body(BaseModel):
    name: str
    rule: dict[str, Any]


def _expected(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def test_a_body_is_fingerprinted_as_sorted_json_whatever_order_its_keys_came_in() -> None:
    one = Body(name="a", rule={"op": "gte", "value": 2})
    other = Body.model_validate({"rule": {"value": 2, "op": "gte"}, "name": "a"})

    assert request_hash("post", "/x", one) == request_hash("POST", "/x", other)
    # What fingerprints stored before keep matching: orjson's bytes, unchanged.
    assert request_hash("POST", "/x", one) == _expected(
        "POST", "/x", b'{"name":"a","rule":{"op":"gte","value":2}}'
    )


def test_a_body_holding_an_integer_beyond_64_bits_is_fingerprinted_not_refused() -> None:
    big = Body(name="a", rule={"value": 2**70, "op": "eq"})
    reordered = Body(name="a", rule={"op": "eq", "value": 2**70})
    other = Body(name="a", rule={"op": "eq", "value": 2**70 + 1})

    assert request_hash("POST", "/x", big) == request_hash("POST", "/x", reordered)
    assert request_hash("POST", "/x", big) != request_hash("POST", "/x", other)
    assert request_hash("POST", "/x", big) == _expected(
        "POST", "/x", b'{"name":"a","rule":{"op":"eq","value":1180591620717411303424}}'
    )
    # A text the standard library writes as escapes, not as bytes that fail to encode.
    assert request_hash("POST", "/x", Body(name="\ud800", rule={"n": 2**70}))
