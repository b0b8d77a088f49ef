"""Members use their own token on `/me`: read, update, consent, export; nothing else."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.kernel.settings import Settings
from tests.conftest import BrandFixture, MemberFixture, bearer
from tests.members.conftest import outbox_events

ME = "/members/v1/me"


async def test_a_member_reads_their_own_profile(
    client: httpx.AsyncClient, member: MemberFixture
) -> None:
    response = await client.get(ME, headers=member.headers)
    assert response.status_code == 200
    assert response.json()["id"] == str(member.id)
    assert response.json()["email"] == "ada.lovelace@example.com"


async def test_a_member_updates_their_profile_but_not_traits(
    client: httpx.AsyncClient, member: MemberFixture, session: AsyncSession
) -> None:
    updated = await client.patch(
        ME, json={"display_name": "Countess", "time_zone": "Europe/Paris"}, headers=member.headers
    )
    traits = await client.patch(ME, json={"traits": {"vip": False}}, headers=member.headers)

    assert updated.status_code == 200
    assert (updated.json()["display_name"], updated.json()["time_zone"]) == (
        "Countess",
        "Europe/Paris",
    )
    assert traits.status_code == 422
    assert traits.json()["detail"][0]["loc"] == ["body", "traits"]
    events = await outbox_events(session)
    assert [t for t, _ in events] == ["member.created", "member.updated"]
    assert events[1][1]["changed"] == ["display_name", "time_zone"]


async def test_a_member_token_cannot_use_staff_routes(
    client: httpx.AsyncClient, member: MemberFixture
) -> None:
    response = await client.get(f"/members/v1/members/{member.id}", headers=member.headers)
    assert response.status_code == 403
    assert response.json() == {
        "error": "Forbidden",
        "detail": "This needs a staff API key with the `members:read` scope.",
    }


async def test_a_staff_key_cannot_use_me(client: httpx.AsyncClient, brand: BrandFixture) -> None:
    response = await client.get(ME, headers=brand.headers)
    assert response.status_code == 403
    assert response.json() == {"error": "Forbidden", "detail": "This needs a member token."}


async def test_a_suspended_member_is_403_and_an_erased_one_401(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    await client.post(f"/members/v1/members/{member.id}/suspend", headers=brand.headers)
    suspended = await client.get(ME, headers=member.headers)
    await client.post(f"/members/v1/members/{member.id}/erase", headers=brand.headers)
    erased = await client.get(ME, headers=member.headers)

    assert suspended.status_code == 403
    assert suspended.json()["error"] == "MemberSuspended"
    assert erased.status_code == 401
    assert erased.json() == {"error": "Unauthorized", "detail": "This member has been erased."}


async def test_a_token_naming_another_brand_finds_no_member(
    client: httpx.AsyncClient,
    member: MemberFixture,
    other_brand: BrandFixture,
    tokens: MemberTokenCodec,
) -> None:
    token = tokens.issue(other_brand.id, member.id, timedelta(hours=1))
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["detail"] == "The token's member does not exist."


def _claims(member: MemberFixture, **overrides: object) -> dict[str, object]:
    now = int(utcnow().timestamp())
    claims: dict[str, object] = {
        "iss": "kinfolk",
        "aud": "kinfolk",
        "sub": str(member.id),
        "brand": str(member.brand_id),
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return claims


@pytest.mark.parametrize("case", ["expired", "unsigned", "other_secret", "wrong_audience", "junk"])
async def test_bad_tokens_are_401_and_change_nothing(
    client: httpx.AsyncClient,
    member: MemberFixture,
    base_settings: Settings,
    session: AsyncSession,
    case: str,
) -> None:
    secret = base_settings.jwt_signing_secret()
    now = int(utcnow().timestamp())
    token = {
        "expired": jwt.encode(_claims(member, exp=now - 60), secret, algorithm="HS256"),
        "unsigned": jwt.encode(_claims(member), key="", algorithm="none"),
        "other_secret": jwt.encode(
            _claims(member), "another-secret-" + "y" * 32, algorithm="HS256"
        ),
        "wrong_audience": jwt.encode(_claims(member, aud="elsewhere"), secret, algorithm="HS256"),
        "junk": "not.a.token",
    }[case]

    read = await client.get(ME, headers=bearer(token))
    write = await client.patch(ME, json={"display_name": "Mallory"}, headers=bearer(token))

    assert read.status_code == write.status_code == 401
    assert read.json()["error"] == "Unauthorized"
    if case == "expired":
        assert read.json()["detail"] == "The token has expired."
    profile = await client.get(ME, headers=member.headers)
    assert profile.json()["display_name"] == "Ada"
    assert [t for t, _ in await outbox_events(session)] == ["member.created"]


async def test_a_token_for_an_unknown_member_is_401(
    client: httpx.AsyncClient, brand: BrandFixture, tokens: MemberTokenCodec
) -> None:
    token = tokens.issue(brand.id, uuid.uuid4(), timedelta(hours=1))
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 401
