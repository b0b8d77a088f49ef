"""Member tokens and staff API keys, checked locally by every service."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio import Redis

from services.kernel.auth import (
    ApiKeyRecord,
    ApiKeyVerifier,
    Authenticator,
    MemberPrincipal,
    MemberTokenCodec,
    Scope,
    ServiceTokens,
    StaffPrincipal,
    VerifiedTokens,
    api_key_cache_key,
    format_api_key,
    hash_api_key_secret,
    parse_api_key,
)
from services.kernel.errors import Unauthorized
from services.kernel.settings import Settings

BRAND = uuid.UUID("0190a000-0000-7000-8000-000000000001")
MEMBER = uuid.UUID("0190a000-0000-7000-8000-000000000002")


def _claims(**overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": "kinfolk",
        "aud": "kinfolk",
        "sub": str(MEMBER),
        "brand": str(BRAND),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    claims.update(overrides)
    return claims


def _unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.fixture
def codec(base_settings: Settings) -> MemberTokenCodec:
    return MemberTokenCodec(base_settings)


def test_an_issued_token_names_the_brand_and_the_member(codec: MemberTokenCodec) -> None:
    token = codec.issue(BRAND, MEMBER, timedelta(minutes=5))
    assert codec.verify(token) == MemberPrincipal(brand_id=BRAND, member_id=MEMBER)


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda s: jwt.encode(_claims(exp=1), s, algorithm="HS256"), "expired"),
        (lambda s: _unsigned(_claims()), "not valid"),
        (
            lambda s: jwt.encode(_claims(), "another-secret-" + "y" * 32, algorithm="HS256"),
            "not valid",
        ),
        (lambda s: jwt.encode(_claims(aud="someone-else"), s, algorithm="HS256"), "not valid"),
        (lambda s: jwt.encode(_claims(iss="evil"), s, algorithm="HS256"), "not valid"),
        (
            lambda s: jwt.encode(
                {k: v for k, v in _claims().items() if k != "brand"}, s, algorithm="HS256"
            ),
            "not valid",
        ),
        (lambda s: jwt.encode(_claims(sub="not-a-uuid"), s, algorithm="HS256"), "not an id"),
        (lambda s: jwt.encode(_claims(), s, algorithm="HS512"), "not valid"),
        (lambda s: "not.a.jwt", "not valid"),
    ],
    ids=[
        "expired",
        "alg-none",
        "other-secret",
        "audience",
        "issuer",
        "no-brand",
        "bad-sub",
        "hs512",
        "garbage",
    ],
)
def test_bad_member_tokens_are_refused(
    codec: MemberTokenCodec, base_settings: Settings, make_token: object, message: str
) -> None:
    secret = base_settings.jwt_signing_secret()
    token = make_token(secret)  # type: ignore[operator]
    with pytest.raises(Unauthorized, match=message):
        codec.verify(token)


def test_rs256_accepts_the_identity_provider_and_refuses_hs256_confusion(
    base_settings: Settings,
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = base_settings.model_copy(
        update={"jwt_algorithm": "RS256", "jwt_public_key": public_pem}
    )
    codec = MemberTokenCodec(settings)
    good = jwt.encode(_claims(), private, algorithm="RS256")
    assert codec.verify(good) == MemberPrincipal(brand_id=BRAND, member_id=MEMBER)
    # The classic confusion: an HS256 token "signed" with the public key as the HMAC secret.
    forged = _hs256_with_raw_key(_claims(), public_pem.encode())
    with pytest.raises(Unauthorized):
        codec.verify(forged)
    with pytest.raises(ValueError, match="only issues tokens with HS256"):
        codec.issue(BRAND, MEMBER, timedelta(minutes=1))


def _counting_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens PyJWT is asked to decode from now on."""
    decoded: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        decoded.append(token)
        return decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    return decoded


def test_a_verified_token_is_remembered_and_a_refused_one_is_not(
    codec: MemberTokenCodec, base_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _counting_decodes(monkeypatch)
    token = codec.issue(BRAND, MEMBER, timedelta(minutes=5))
    other = codec.issue(BRAND, uuid.uuid4(), timedelta(minutes=5))
    forged = jwt.encode(_claims(), "another-secret-" + "y" * 32, algorithm="HS256")
    for _ in range(3):
        assert codec.verify(token) == MemberPrincipal(brand_id=BRAND, member_id=MEMBER)
        with pytest.raises(Unauthorized, match="not valid"):
            codec.verify(forged)
    assert codec.verify(other).member_id != MEMBER
    assert decoded == [token, forged, forged, forged, other]


def test_a_remembered_token_is_refused_once_it_expires(
    base_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Accepted for at most a second: PyJWT allows `exp` plus the leeway.
    codec = MemberTokenCodec(base_settings.model_copy(update={"jwt_leeway_seconds": 1}))
    exp = int(time.time())
    token = jwt.encode(_claims(exp=exp), base_settings.jwt_signing_secret(), algorithm="HS256")
    assert codec.verify(token).member_id == MEMBER
    time.sleep(max(0.0, exp + 1.05 - time.time()))
    with pytest.raises(Unauthorized, match="expired"):
        codec.verify(token)


def test_remembered_tokens_are_bounded_in_number_and_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verified = VerifiedTokens(capacity=2)
    far = time.time() + 3_600
    principals = {t: MemberPrincipal(brand_id=BRAND, member_id=uuid.uuid4()) for t in "abc"}
    for token, principal in principals.items():
        verified.put(token, principal, far)
    assert len(verified) == 2
    assert verified.get("a") is None  # the longest held went first
    assert [verified.get(t) for t in "bc"] == [principals["b"], principals["c"]]
    # However long the token lives, the answer is kept only VERIFIED_TOKEN_LIFESPAN_SECONDS.
    later = time.monotonic() + 61
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert verified.get("b") is None
    assert len(verified) == 1


def _hs256_with_raw_key(claims: dict[str, object], key: bytes) -> str:
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_api_keys_round_trip_and_malformed_ones_do_not_parse() -> None:
    key_id = uuid.uuid4()
    assert parse_api_key(format_api_key(key_id, "s3cret_with_underscore")) == (
        key_id,
        "s3cret_with_underscore",
    )
    for bad in ["kf_", "kf_nothex_secret", f"kf_{key_id.hex}", f"kf_{key_id.hex}_", "sk_live_x"]:
        assert parse_api_key(bad) is None


class _CountingLookup:
    def __init__(self, record: ApiKeyRecord | None) -> None:
        self.record = record
        self.calls = 0

    async def __call__(self, key_id: uuid.UUID, token: str) -> ApiKeyRecord | None:
        self.calls += 1
        return self.record


def _record(key_id: uuid.UUID, secret: str, **changes: object) -> ApiKeyRecord:
    values: dict[str, object] = {
        "key_id": key_id,
        "brand_id": BRAND,
        "scopes": frozenset({"members:write"}),
        "secret_hash": hash_api_key_secret(secret),
        "revoked": False,
        "expires_at": None,
    }
    values.update(changes)
    return ApiKeyRecord(**values)  # type: ignore[arg-type]


async def test_a_key_is_looked_up_once_then_served_from_the_cache(redis: Redis) -> None:
    key_id, secret = uuid.uuid4(), "correct-horse"
    lookup = _CountingLookup(_record(key_id, secret))
    verifier = ApiKeyVerifier(redis, lookup, cache_seconds=60)
    token = format_api_key(key_id, secret)
    for _ in range(3):
        principal = await verifier.verify(token)
    assert principal == StaffPrincipal(BRAND, key_id, frozenset({"members:write"}))
    assert principal.has(Scope.MEMBERS_READ)  # write includes read
    assert not principal.has(Scope.REWARDS_READ)
    admin = StaffPrincipal(BRAND, key_id, frozenset({"admin"}))
    assert all(admin.has(scope) for scope in Scope)  # admin holds every scope
    assert lookup.calls == 1
    assert 0 < await redis.ttl(api_key_cache_key(key_id)) <= 60


async def test_wrong_secret_revoked_expired_and_unknown_keys_are_refused(redis: Redis) -> None:
    key_id, secret = uuid.uuid4(), "correct-horse"
    verifier = ApiKeyVerifier(redis, _CountingLookup(_record(key_id, secret)), 60)
    with pytest.raises(Unauthorized, match="not valid"):
        await verifier.verify(format_api_key(key_id, "wrong"))

    revoked_id = uuid.uuid4()
    revoked = ApiKeyVerifier(redis, _CountingLookup(_record(revoked_id, secret, revoked=True)), 60)
    with pytest.raises(Unauthorized, match="revoked"):
        await revoked.verify(format_api_key(revoked_id, secret))

    expired_id = uuid.uuid4()
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = ApiKeyVerifier(
        redis, _CountingLookup(_record(expired_id, secret, expires_at=past)), 60
    )
    with pytest.raises(Unauthorized, match="expired"):
        await expired.verify(format_api_key(expired_id, secret))

    unknown_lookup = _CountingLookup(None)
    unknown = ApiKeyVerifier(redis, unknown_lookup, 60)
    unknown_token = format_api_key(uuid.uuid4(), secret)
    for _ in range(3):
        with pytest.raises(Unauthorized, match="not valid"):
            await unknown.verify(unknown_token)
    assert unknown_lookup.calls == 1  # unknown keys are remembered briefly


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Send `Authorization"),
        ("Basic dXNlcjpwdw==", "Bearer scheme"),
        ("Bearer ", "Bearer scheme"),
        ("Bearer kf_garbage", "malformed"),
    ],
)
async def test_missing_or_malformed_authorization_is_refused(
    redis: Redis,
    codec: MemberTokenCodec,
    base_settings: Settings,
    header: str | None,
    message: str,
) -> None:
    authenticator = Authenticator(
        codec, ApiKeyVerifier(redis, _CountingLookup(None), 60), ServiceTokens(base_settings)
    )
    with pytest.raises(Unauthorized, match=message):
        await authenticator.authenticate(header)
