"""Service tokens: what a job shows another service for one brand, with the scopes it needs and
no more, for a few minutes; nothing else can pass for one."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import httpx
import jwt
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel import auth
from services.kernel.auth import (
    SERVICE_TOKEN_SECONDS,
    MemberTokenCodec,
    Scope,
    ServiceTokens,
    StaffPrincipal,
    service_key_id,
)
from services.kernel.errors import Unauthorized
from services.kernel.settings import Settings, settings_refused
from tests.conftest import BrandFixture, bearer, make_brand
from tests.marketing.segments_world import create

BRAND = uuid.UUID("0190a000-0000-7000-8000-000000000001")
READ = frozenset({Scope.RECOMMENDER_READ})


def _forged(settings: Settings, **claims: object) -> str:
    """A token signed with the right key, with `claims` over sound ones."""
    now = int(time.time())
    sound: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": "kinfolk-services",
        "sub": "marketing",
        "brand": str(BRAND),
        "scopes": ["recommender:read"],
        "iat": now,
        "exp": now + 60,
    }
    key = settings.signing_key(settings.service_secret, b"kinfolk service tokens v1")
    return "kfs_" + jwt.encode({**sound, **claims}, key, algorithm="HS256")


def test_an_issued_token_names_the_service_the_brand_and_its_scopes_only(
    base_settings: Settings,
) -> None:
    tokens = ServiceTokens(base_settings)
    token = tokens.issue("marketing", BRAND, READ)
    assert token.startswith("kfs_")
    assert tokens.verify(token) == StaffPrincipal(
        brand_id=BRAND,
        key_id=service_key_id("marketing", BRAND),
        scopes=frozenset({"recommender:read"}),
        service="marketing",
    )
    # The key id is stable per service and brand (its own rate limit bucket), and no other's.
    assert service_key_id("marketing", BRAND) != service_key_id("marketing", uuid.uuid4())
    assert service_key_id("marketing", BRAND) != service_key_id("webhooks", BRAND)
    assert tokens.authorization("marketing", BRAND, READ).startswith("Bearer kfs_")
    with pytest.raises(ValueError, match="admin"):
        tokens.issue("marketing", BRAND, frozenset({Scope.ADMIN}))


def test_a_token_is_good_for_a_few_minutes(
    base_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = ServiceTokens(base_settings)
    then = time.time() - SERVICE_TOKEN_SECONDS - 1
    monkeypatch.setattr(auth.time, "time", lambda: then)
    old = tokens.issue("marketing", BRAND, READ)
    monkeypatch.undo()
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(old)


def test_only_a_token_signed_with_the_service_key_passes(base_settings: Settings) -> None:
    tokens = ServiceTokens(base_settings)
    good = tokens.issue("marketing", BRAND, READ)
    header, _, signature = good.removeprefix("kfs_").split(".")
    other_brand = jwt.decode(good[4:], options={"verify_signature": False})
    other_brand["brand"] = str(uuid.uuid4())
    tampered = jwt.encode(other_brand, "not the key " * 4, algorithm="HS256").split(".")[1]
    member = MemberTokenCodec(base_settings).issue(BRAND, uuid.uuid4(), timedelta(minutes=5))
    refused = {
        "tampered brand": f"kfs_{header}.{tampered}.{signature}",
        "a member token as one": "kfs_" + member,
        "signed with the member tokens' secret": "kfs_"
        + jwt.encode(
            jwt.decode(good[4:], options={"verify_signature": False}),
            base_settings.jwt_signing_secret(),
            algorithm="HS256",
        ),
        "another deployment's secret": ServiceTokens(
            base_settings.model_copy(update={"service_secret": SecretStr("x" * 48)})
        ).issue("marketing", BRAND, READ),
        "admin": _forged(base_settings, scopes=["admin"]),
        "an unknown scope": _forged(base_settings, scopes=["recommender:everything"]),
        "scopes not a list": _forged(base_settings, scopes="recommender:read"),
        "brand not an id": _forged(base_settings, brand="acme"),
        "no brand": _forged(base_settings, brand=None),
        "a member token's audience": _forged(base_settings, aud="kinfolk"),
        "unsigned": "kfs_" + jwt.encode({"sub": "marketing"}, None, algorithm="none"),
        "garbage": "kfs_garbage",
    }
    accepted = []
    for name, token in refused.items():
        try:
            tokens.verify(token)
        except Unauthorized:
            continue
        accepted.append(name)
    assert accepted == []
    # A member token's codec does not take a service token either.
    with pytest.raises(Unauthorized):
        MemberTokenCodec(base_settings).verify(good[4:])


async def test_a_service_token_reads_its_brand_with_its_scopes_only(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    other = await make_brand(session, "Other")
    await create(client, brand, {"field": "points_available", "op": "gte", "value": 0})
    tokens = ServiceTokens(base_settings)

    def headers(brand_id: uuid.UUID, *scopes: Scope) -> dict[str, str]:
        return bearer(tokens.issue("marketing", brand_id, frozenset(scopes)))

    mine = await client.get(
        "/marketing/v1/segments", headers=headers(brand.id, Scope.MARKETING_READ)
    )
    assert mine.status_code == 200, mine.text
    assert [s["name"] for s in mine.json()["items"]] == ["segment"]
    theirs = await client.get(
        "/marketing/v1/segments", headers=headers(other.id, Scope.MARKETING_READ)
    )
    assert (theirs.status_code, theirs.json()["items"]) == (200, [])
    unscoped = await client.get(
        "/marketing/v1/segments", headers=headers(brand.id, Scope.RECOMMENDER_READ)
    )
    assert (unscoped.status_code, unscoped.json()["error"]) == (403, "Forbidden")
    written = await client.post(
        "/marketing/v1/segments",
        json={"name": "x", "rule": {"field": "points_available", "op": "gte", "value": 1}},
        headers=headers(brand.id, Scope.MARKETING_READ),
    )
    assert (written.status_code, written.json()["error"]) == (403, "Forbidden")
    forged = await client.get(
        "/marketing/v1/segments", headers={"Authorization": "Bearer kfs_forged"}
    )
    assert (forged.status_code, forged.json()["error"]) == (401, "Unauthorized")
    after = await client.get("/marketing/v1/segments", headers=brand.headers)
    assert [s["name"] for s in after.json()["items"]] == ["segment"]


@pytest.mark.parametrize(
    ("settings", "refused"),
    [
        ({}, "set KINFOLK_JWT_SECRET"),
        ({"jwt_algorithm": "RS256", "jwt_jwks_url": "https://idp.example.com/jwks"},
         "set KINFOLK_SERVICE_SECRET"),
        ({"service_secret": "s" * 48}, "set KINFOLK_JWT_SECRET"),
        ({"jwt_secret": "j" * 48}, None),
        ({"jwt_algorithm": "RS256", "jwt_jwks_url": "https://idp.example.com/jwks",
          "service_secret": "s" * 48}, None),
    ],
)  # fmt: skip
def test_production_needs_a_secret_every_process_shares(
    settings: dict[str, str], refused: str | None
) -> None:
    """A secret generated into one host's data folder would not be the next host's."""
    if refused is None:
        assert Settings(environment="production", **settings).environment == "production"
        return
    with pytest.raises(ValidationError) as error:
        Settings(environment="production", **settings)
    message = settings_refused(error.value)
    assert refused in message
    assert "KINFOLK_:" not in message
    assert Settings(**settings).environment == "development"  # development generates one
