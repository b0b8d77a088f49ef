"""Who is calling: a member (JWT), brand staff (API key with scopes), or a Kinfolk service
acting for a brand (service token with scopes).

All travel as `Authorization: Bearer <token>`. API keys look like `kf_<key id>_<secret>`, service
tokens `kfs_<JWT>`; anything else is treated as a member JWT. Every service checks them locally:
JWTs by signature, API keys through a short Redis cache in front of the members service, so no
request costs a call to another service once a key has been seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Protocol

import jwt
import orjson
from fastapi import Depends, Request
from redis.asyncio import Redis

from services.kernel.caches import MISSING, BoundedCache
from services.kernel.clock import utcnow
from services.kernel.errors import Forbidden, ServiceUnavailable, Unauthorized
from services.kernel.loops import off_loop
from services.kernel.settings import Settings

API_KEY_PREFIX = "kf_"


class Scope(StrEnum):
    """Staff permissions: read or write per area, plus `admin` for keys and brand settings."""

    ADMIN = "admin"
    MEMBERS_READ = "members:read"
    MEMBERS_WRITE = "members:write"
    REWARDS_READ = "rewards:read"
    REWARDS_WRITE = "rewards:write"
    COMMUNITY_READ = "community:read"
    COMMUNITY_WRITE = "community:write"
    RECOMMENDER_READ = "recommender:read"
    RECOMMENDER_WRITE = "recommender:write"
    MARKETING_READ = "marketing:read"
    MARKETING_WRITE = "marketing:write"
    WEBHOOKS = "webhooks"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)


@dataclass(frozen=True, slots=True)
class StaffPrincipal:
    """Staff of a brand: an API key, or a service token (`service` names the service that a
    job of which shows it; its `key_id` is `service_key_id(service, brand)`)."""

    brand_id: uuid.UUID
    key_id: uuid.UUID
    scopes: frozenset[str]
    service: str | None = None

    def has(self, scope: Scope) -> bool:
        if scope.value in self.scopes or Scope.ADMIN.value in self.scopes:
            return True  # admin holds every scope
        # Write access to an area includes reading it.
        return (
            scope.value.endswith(":read") and scope.value.replace(":read", ":write") in self.scopes
        )


@dataclass(frozen=True, slots=True)
class MemberPrincipal:
    brand_id: uuid.UUID
    member_id: uuid.UUID


Principal = StaffPrincipal | MemberPrincipal


# --- API keys -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What a verifier needs to know about a key; never contains the secret itself."""

    key_id: uuid.UUID
    brand_id: uuid.UUID
    scopes: frozenset[str]
    secret_hash: str
    revoked: bool
    expires_at: datetime | None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "key_id": str(self.key_id),
                "brand_id": str(self.brand_id),
                "scopes": sorted(self.scopes),
                "secret_hash": self.secret_hash,
                "revoked": self.revoked,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> ApiKeyRecord:
        data = orjson.loads(raw)
        return cls(
            key_id=uuid.UUID(data["key_id"]),
            brand_id=uuid.UUID(data["brand_id"]),
            scopes=frozenset(data["scopes"]),
            secret_hash=data["secret_hash"],
            revoked=data["revoked"],
            expires_at=datetime.fromisoformat(data["expires_at"]) if data["expires_at"] else None,
        )


def hash_api_key_secret(secret: str) -> str:
    # The secret is 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def format_api_key(key_id: uuid.UUID, secret: str) -> str:
    return f"{API_KEY_PREFIX}{key_id.hex}_{secret}"


def parse_api_key(token: str) -> tuple[uuid.UUID, str] | None:
    if not token.startswith(API_KEY_PREFIX):
        return None
    key_hex, sep, secret = token[len(API_KEY_PREFIX) :].partition("_")
    if not sep or not secret:
        return None
    try:
        return uuid.UUID(hex=key_hex), secret
    except ValueError:
        return None


class ApiKeyLookup(Protocol):
    """Finds a key's record: the members service reads its table, others ask it over HTTP."""

    async def __call__(self, key_id: uuid.UUID, token: str) -> ApiKeyRecord | None: ...


def api_key_cache_key(key_id: uuid.UUID) -> str:
    return f"kinfolk:apikey:{key_id}"


class ApiKeyVerifier:
    """Verifies staff API keys through a Redis cache in front of an `ApiKeyLookup`."""

    _MISSING = b"missing"

    def __init__(self, redis: Redis, lookup: ApiKeyLookup, cache_seconds: int) -> None:
        self._redis = redis
        self._lookup = lookup
        self._cache_seconds = cache_seconds

    async def verify(self, token: str) -> StaffPrincipal:
        parsed = parse_api_key(token)
        if parsed is None:
            raise Unauthorized("The API key is malformed.")
        key_id, secret = parsed
        record = await self._record(key_id, token)
        if record is None or not hmac.compare_digest(
            record.secret_hash, hash_api_key_secret(secret)
        ):
            raise Unauthorized("The API key is not valid.")
        if record.revoked:
            raise Unauthorized("The API key has been revoked.")
        if record.expires_at is not None and record.expires_at <= utcnow():
            raise Unauthorized("The API key has expired.")
        return StaffPrincipal(brand_id=record.brand_id, key_id=key_id, scopes=record.scopes)

    async def _record(self, key_id: uuid.UUID, token: str) -> ApiKeyRecord | None:
        cache_key = api_key_cache_key(key_id)
        cached: bytes | None = await self._redis.get(cache_key)
        if cached == self._MISSING:
            return None
        if cached is not None:
            return ApiKeyRecord.from_json(cached)
        record = await self._lookup(key_id, token)
        if record is None:
            # Unknown keys are remembered briefly so a flood of bad keys cannot reach the database.
            await self._redis.set(cache_key, self._MISSING, ex=5)
        else:
            await self._redis.set(cache_key, record.to_json(), ex=self._cache_seconds)
        return record


async def forget_api_key(redis: Redis, key_id: uuid.UUID) -> None:
    """Drop a key from every service's cache (after a revocation or a change of scopes)."""
    await redis.delete(api_key_cache_key(key_id))


async def cache_api_key_record(redis: Redis, record: ApiKeyRecord, seconds: int) -> None:
    """Put a key's current record in every service's cache, replacing whatever was there.

    Revocation writes the revoked record rather than deleting the entry: a verifier then refuses
    the key at once, without a lookup that could race the revoking transaction's commit.
    """
    await redis.set(api_key_cache_key(record.key_id), record.to_json(), ex=seconds)


# --- Member tokens --------------------------------------------------------------------------

# After a JWKS fetch fails, tokens whose key is not known yet are answered 503 at once for this
# long, rather than each request waiting out another timeout on an identity provider that is down.
JWKS_RETRY_SECONDS = 5
# How long a fetched key is trusted before the JWKS is asked again: a key the provider withdraws
# (rotated out, or compromised) stops verifying tokens within this time, as with PyJWKClient's
# own cache of the key set.
JWKS_KEY_LIFESPAN_SECONDS = 300


class JwksKeys:
    """The identity provider's signing keys by key id (`kid`), fetched from its JWKS URL.

    PyJWKClient fetches with blocking urllib, so from the event loop a fetch runs in a thread
    of its own (`off_loop`: not the loop's default executor, which resolves host names, and not
    one a stopping process waits for), one at a time: requests waiting for a slow provider
    share one fetch, and the loop serves on. A key found is kept JWKS_KEY_LIFESPAN_SECONDS; an
    unknown `kid` is looked up again no more often than PyJWKClient's cooldown allows.
    """

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._client = jwt.PyJWKClient(url, timeout=timeout_seconds)
        self._keys: dict[str, tuple[float, Any]] = {}  # kid -> (fetched at, key)
        self._turn = asyncio.Lock()
        self._failed_at: float | None = None

    async def fetch(self, token: str) -> None:
        """Have the token's key at hand, fetching it off the event loop if need be."""
        kid = _key_id(token)
        if self._fresh(kid) is not None:
            return
        async with self._turn:
            if self._fresh(kid) is None:  # another request may have fetched it meanwhile
                await off_loop(lambda: self._fetch(kid))

    def key(self, token: str) -> Any:
        """The token's key; fetched here, blocking, unless `fetch` found it first."""
        kid = _key_id(token)
        key = self._fresh(kid)
        return key if key is not None else self._fetch(kid)

    def _fresh(self, kid: str) -> Any:
        found = self._keys.get(kid)
        if found is None or time.monotonic() - found[0] > JWKS_KEY_LIFESPAN_SECONDS:
            return None
        return found[1]

    def _fetch(self, kid: str) -> Any:
        if self._failed_at is not None and time.monotonic() - self._failed_at < JWKS_RETRY_SECONDS:
            raise _jwks_unavailable()
        try:
            key = self._client.get_signing_key(kid).key
        except (jwt.PyJWKClientConnectionError, OSError, ValueError) as exc:
            # Unreachable, timed out, or an answer that is not JSON: the provider's failure,
            # not the token's; the caller should retry, not sign the member out.
            self._failed_at = time.monotonic()
            raise _jwks_unavailable() from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The token is not valid: {exc}.") from exc
        self._failed_at = None
        self._keys[kid] = (time.monotonic(), key)
        return key


def _key_id(token: str) -> str:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"The token is not valid: {exc}.") from exc
    if not isinstance(kid, str):
        raise Unauthorized("The token names no signing key (`kid`).")
    return kid


def _jwks_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Member tokens cannot be checked right now (the identity provider's signing keys "
        "could not be fetched); retry shortly.",
        headers={"Retry-After": str(JWKS_RETRY_SECONDS)},
    )


# An app sends the same token with every request for as long as it lives, and checking its
# signature and claims costs PyJWT a tenth of a millisecond of CPU (HS256; more for RS256): a
# verified token is remembered, per process, until it expires but for at most
# VERIFIED_TOKEN_LIFESPAN_SECONDS, so that a signing key withdrawn from the JWKS stops verifying
# tokens within that time after the JWKS's own key lifespan.
VERIFIED_TOKENS = 20_000
VERIFIED_TOKEN_LIFESPAN_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: MemberPrincipal
    expires_at: float  # epoch seconds, as the token's `exp` (plus the leeway)


class VerifiedTokens:
    """Tokens that verified, and whom they name, while that still holds: until the token
    expires, and no longer than VERIFIED_TOKEN_LIFESPAN_SECONDS.

    Bounded: past `capacity`, the least recently used token is forgotten (it is verified again
    if it comes back). A refused token is never remembered: each attempt is checked anew.
    """

    def __init__(self, capacity: int = VERIFIED_TOKENS) -> None:
        self._held: BoundedCache[str, _Verified] = BoundedCache(capacity)

    def get(self, token: str) -> MemberPrincipal | None:
        found = self._held.get(token)
        if found is MISSING:
            return None
        if time.time() >= found.expires_at:
            self._held.forget(token)
            return None
        return found.principal

    def put(self, token: str, principal: MemberPrincipal, expires_at: float) -> None:
        self._held.put(
            token, _Verified(principal, expires_at), seconds=VERIFIED_TOKEN_LIFESPAN_SECONDS
        )

    def __len__(self) -> int:
        return len(self._held)


def decode_with_any(token: str, keys: Sequence[Any], **options: Any) -> dict[str, Any]:
    """`jwt.decode` with the first of `keys` the signature matches: the signing key first, then
    those a rotation still accepts. Any other fault (expired, wrong audience) is the token's."""
    for key in keys[:-1]:
        try:
            claims: dict[str, Any] = jwt.decode(token, key, **options)
        except jwt.InvalidSignatureError:
            continue
        return claims
    last: dict[str, Any] = jwt.decode(token, keys[-1], **options)
    return last


class MemberTokenCodec:
    """Issues (HS256 only) and verifies member JWTs whose claims name the brand and the member."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._verified = VerifiedTokens()
        self._algorithm = settings.jwt_algorithm
        self._jwks: JwksKeys | None = None
        self._key: Any
        # HS256: the signing secret, then those a rotation still accepts.
        self._accepted: list[str] = []
        if self._algorithm == "HS256":
            self._key = settings.jwt_signing_secret()
            self._accepted = [s.get_secret_value() for s in settings.jwt_accepted_secrets]
        elif settings.jwt_public_key:
            self._key = settings.jwt_public_key
        elif settings.jwt_jwks_url:
            self._jwks = JwksKeys(settings.jwt_jwks_url, settings.outbound_timeout_seconds)
            self._key = None
        else:
            raise ValueError("RS256 needs KINFOLK_JWT_PUBLIC_KEY or KINFOLK_JWT_JWKS_URL")

    def issue(self, brand_id: uuid.UUID, member_id: uuid.UUID, ttl: timedelta) -> str:
        if self._algorithm != "HS256":
            raise ValueError(
                "Kinfolk only issues tokens with HS256; RS256 tokens come from your IdP"
            )
        now = utcnow()
        claims = {
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "sub": str(member_id),
            "brand": str(brand_id),
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    async def fetch_key(self, token: str) -> None:
        """With a JWKS URL, fetch the token's key unless it is known, off the event loop, so
        that `verify` then needs no network. Call it first from async code."""
        if self._jwks is not None and self._verified.get(token) is None:
            await self._jwks.fetch(token)

    def verify(self, token: str) -> MemberPrincipal:
        known = self._verified.get(token)
        if known is not None:
            return known
        key = self._jwks.key(token) if self._jwks is not None else self._key
        try:
            # Exactly one algorithm is accepted: this rules out `alg: none` and RS/HS confusion.
            claims = decode_with_any(
                token,
                [key, *self._accepted],
                algorithms=[self._algorithm],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway_seconds,
                options={"require": ["exp", "sub", "brand", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The token is not valid: {exc}.") from exc
        try:
            principal = MemberPrincipal(
                brand_id=uuid.UUID(str(claims["brand"])), member_id=uuid.UUID(str(claims["sub"]))
            )
        except ValueError as exc:
            raise Unauthorized("The token's brand or subject is not an id.") from exc
        # PyJWT accepts a token while now < exp + leeway.
        self._verified.put(
            token, principal, float(claims["exp"]) + self._settings.jwt_leeway_seconds
        )
        return principal


# --- Service tokens ------------------------------------------------------------------------

SERVICE_TOKEN_PREFIX = "kfs_"  # noqa: S105 - a prefix, not a secret
# Long enough for a job's calls, short enough that a token seen in a log is soon worthless.
SERVICE_TOKEN_SECONDS = 300
_SERVICE_AUDIENCE = "kinfolk-services"
# Keeps a key derived from the JWT secret from ever verifying a member token, or the reverse.
_SERVICE_KEY_LABEL = b"kinfolk service tokens v1"
_SERVICE_KEY_IDS = uuid.UUID("6f0d1c52-3b1e-4c38-9a57-2d8b0f6e4a11")


def service_key_id(service: str, brand_id: uuid.UUID) -> uuid.UUID:
    """The key id a service's calls for a brand go by: their own rate limit bucket, and a
    stable name in logs."""
    return uuid.uuid5(_SERVICE_KEY_IDS, f"{service}:{brand_id}")


class ServiceTokens:
    """Issues and verifies service tokens: what a Kinfolk process shows another service when it
    acts for a brand with no caller to speak for (a scheduled job), with only the scopes the
    call needs, for SERVICE_TOKEN_SECONDS. Signed (HS256) with `KINFOLK_SERVICE_SECRET`, which
    every process of a deployment shares; a member token's secret cannot sign one."""

    def __init__(self, settings: Settings) -> None:
        self._keys = settings.verifying_keys(
            settings.service_secret, settings.service_accepted_secrets, _SERVICE_KEY_LABEL
        )
        self._key = self._keys[0]
        self._issuer = settings.jwt_issuer

    def issue(self, service: str, brand_id: uuid.UUID, scopes: frozenset[Scope]) -> str:
        if Scope.ADMIN in scopes:
            # Keys and brand settings stay with people: no job needs to change them.
            raise ValueError("service tokens never carry the admin scope")
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "aud": _SERVICE_AUDIENCE,
            "sub": service,
            "brand": str(brand_id),
            "scopes": sorted(s.value for s in scopes),
            "iat": now,
            "exp": now + SERVICE_TOKEN_SECONDS,
        }
        return SERVICE_TOKEN_PREFIX + jwt.encode(claims, self._key, algorithm="HS256")

    def authorization(self, service: str, brand_id: uuid.UUID, scopes: frozenset[Scope]) -> str:
        """An `Authorization` header value carrying a fresh token."""
        return f"Bearer {self.issue(service, brand_id, scopes)}"

    def verify(self, token: str) -> StaffPrincipal:
        try:
            claims = decode_with_any(
                token.removeprefix(SERVICE_TOKEN_PREFIX),
                self._keys,
                algorithms=["HS256"],
                audience=_SERVICE_AUDIENCE,
                issuer=self._issuer,
                options={"require": ["exp", "sub", "brand", "scopes", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The service token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The service token is not valid: {exc}.") from exc
        scopes = claims["scopes"]
        service = claims["sub"]
        if (
            not isinstance(scopes, list)
            or not set(scopes) <= ALL_SCOPES - {Scope.ADMIN.value}
            or not isinstance(service, str)
        ):
            raise Unauthorized("The service token's scopes or subject are not valid.")
        try:
            brand_id = uuid.UUID(str(claims["brand"]))
        except ValueError as exc:
            raise Unauthorized("The service token's brand is not an id.") from exc
        return StaffPrincipal(
            brand_id=brand_id,
            key_id=service_key_id(service, brand_id),
            scopes=frozenset(scopes),
            service=service,
        )


# --- FastAPI dependencies -------------------------------------------------------------------


@dataclass(slots=True)
class Authenticator:
    tokens: MemberTokenCodec
    api_keys: ApiKeyVerifier
    services: ServiceTokens

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("Send `Authorization: Bearer <token>`.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use the Bearer scheme: `Authorization: Bearer <token>`.")
        token = token.strip()
        if token.startswith(API_KEY_PREFIX):
            return await self.api_keys.verify(token)
        if token.startswith(SERVICE_TOKEN_PREFIX):
            return self.services.verify(token)
        await self.tokens.fetch_key(token)
        return self.tokens.verify(token)


async def get_principal(request: Request) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.authenticate(request.headers.get("authorization"))


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_staff(scope: Scope) -> Callable[[Principal], Awaitable[StaffPrincipal]]:
    """A dependency that admits only staff keys holding `scope`."""

    async def dependency(principal: PrincipalDep) -> StaffPrincipal:
        if not isinstance(principal, StaffPrincipal):
            raise Forbidden(f"This needs a staff API key with the `{scope.value}` scope.")
        if not principal.has(scope):
            raise Forbidden(f"This API key lacks the `{scope.value}` scope.")
        return principal

    return dependency


async def require_member(principal: PrincipalDep) -> MemberPrincipal:
    if not isinstance(principal, MemberPrincipal):
        raise Forbidden("This needs a member token.")
    return principal


MemberDep = Annotated[MemberPrincipal, Depends(require_member)]
