"""Input rules that need no database: emails behave exactly like pydantic's EmailStr."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError
from pydantic.networks import EmailStr

from services.members.schemas import Email

ADDRESSES = [
    "ada@example.com",
    "Ada.Lovelace+news@Example.COM",
    "o'brien@example.ie",
    "x@sub.domain.example.co.uk",
    "a.b-c_d!#$%&'*/=?^`{|}~@example.org",
    "Ada Lovelace <ada@example.com>",
    '"quoted local"@example.com',
    "zoë@example.com",
    "ada@bücher.example",
    "ada@localhost",
    "ada@example.test",
    "ada@example.invalid",
    "ada@[127.0.0.1]",
    "ada@123.123.123.123",
    "ada@-bad-.com",
    "ada@example",
    "ada@example.c",
    "ada..lovelace@example.com",
    ".ada@example.com",
    "ada.@example.com",
    "ada@@example.com",
    "@example.com",
    "ada@",
    "ada",
    "a" * 65 + "@example.com",
    "ada@" + "d" * 250 + ".com",
    "ada@exa_mple.com",
    "ada @example.com",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_email_accepts_and_refuses_exactly_what_email_str_does(address: str) -> None:
    ours = TypeAdapter(Email)
    theirs = TypeAdapter(EmailStr)
    try:
        expected: str | None = theirs.validate_python(address).lower()
    except ValidationError:
        expected = None
    try:
        got: str | None = ours.validate_python(address)
    except ValidationError:
        got = None
    assert got == expected
    # Twice, so the second answer comes from the per-domain cache.
    try:
        assert ours.validate_python(address) == expected
    except ValidationError:
        assert expected is None
