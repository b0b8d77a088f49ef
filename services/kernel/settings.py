"""Process-wide settings, read from `KINFOLK_*` environment variables."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kernel.tcp_liveness import TcpLiveness

# asyncpg's TLS modes, which are libpq's `sslmode` values (a URL may spell it either way).
TLS_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+asyncpg"})
# The Redis URLs Kinfolk (redis-py and arq) connects to.
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KINFOLK_", extra="ignore")

    # Infrastructure. When a URL is unset, an embedded server is started under `data_dir`.
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".kinfolk")
    # How long a new PostgreSQL connection may take (TCP, TLS and login), and how long a unit of
    # work waits for a pooled one when all are busy: both fail as 503s, not as requests hanging
    # on a server that is away. Queries themselves have no limit: bulk jobs run long ones. A
    # server that goes silent mid-query is found by TCP keepalives (`tcp_liveness`, set in the URL).
    database_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    database_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    # Connections each process keeps open, and how many more it may open for a burst. One
    # GraphQL request holds several at once (the gateway calls the services side by side), and a
    # connection opened past the pool is closed when it is returned, so a pool smaller than the
    # usual load opens and closes connections all the time (a PostgreSQL backend each).
    database_pool_size: int = Field(default=20, ge=1)
    database_pool_overflow: int = Field(default=10, ge=0)
    # How long connecting to Redis and waiting for its reply to a command may take. A blocking
    # read (a consumer's XREADGROUP BLOCK) may wait its block time on top; pub/sub listeners
    # wait for messages as long as they like.
    redis_timeout_seconds: float = Field(default=5.0, gt=0)

    # The relay's and the workers' probes (`/healthz`, `/readyz`) and Prometheus metrics
    # (`/metrics`), on this port when set; services serve them on their own port. Containers
    # set the host to 0.0.0.0 so that the orchestrator and Prometheus reach them.
    metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    metrics_host: str = "127.0.0.1"

    # Member tokens. HS256 with a shared secret by default; RS256 with a public key or a JWKS URL.
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str = "kinfolk"
    jwt_audience: str = "kinfolk"
    jwt_leeway_seconds: int = 10
    # Service tokens: what a job (which has no caller) shows another service, for one brand and
    # the scopes it needs (a scheduled segment's affinity condition asking the recommender).
    # Signed with this secret, shared by every process of the deployment (unset: derived from
    # the JWT signing secret).
    service_secret: SecretStr | None = None
    # Secrets still accepted when verifying, never used to sign (JSON lists): how a secret is
    # rotated with no token or link refused on the way (docs/operations.md, "Rotating a secret").
    jwt_accepted_secrets: list[SecretStr] = Field(default_factory=list)
    service_accepted_secrets: list[SecretStr] = Field(default_factory=list)
    export_link_accepted_secrets: list[SecretStr] = Field(default_factory=list)

    # Staff API keys are verified once and cached this long in Redis; revocation clears the cache.
    api_key_cache_seconds: int = 60

    # Base URLs of services running in other processes. Unset means "in this process".
    members_url: str | None = None
    rewards_url: str | None = None
    community_url: str | None = None
    recommender_url: str | None = None

    # "development" serves GraphiQL at /graphql and accepts any GraphQL document; "production"
    # serves no IDE and lets a brand that asks for it run only its registered operations.
    environment: Literal["development", "production"] = "development"

    # GraphQL limits. A document over the depth, alias or token limit is refused before it runs;
    # its cost (each object field 1, a list's selection times its `first`/`last`) must be within
    # `graphql_max_cost`, and a member may spend `graphql_cost_per_minute` a minute in all.
    graphql_max_depth: int = Field(default=10, ge=2)
    graphql_max_aliases: int = Field(default=15, ge=0)
    graphql_max_tokens: int = Field(default=2_000, ge=100)
    graphql_max_cost: int = Field(default=5_000, ge=1)
    graphql_cost_per_minute: int = Field(default=50_000, ge=1)
    # Automatic persisted queries are kept this long after their last registration.
    graphql_persisted_query_days: int = Field(default=30, ge=1)
    # New documents one member may persist a day: apps send a few dozen; the cap keeps one member
    # from filling Redis with documents made up to do so.
    graphql_persisted_queries_per_day: int = Field(default=500, ge=1)
    # Registered operations per brand: `<brand id>.json` manifests, `{"enforce": bool,
    # "operations": {"<sha256 of the document>": "<document>"}}`, shipped with the apps' builds.
    # In production a brand whose manifest says `enforce` runs only its registered operations.
    graphql_operations_dir: Path | None = None

    # HTTP limits.
    max_body_bytes: int = 1_048_576
    max_import_bytes: int = 256 * 1_048_576
    # How long an idle keep-alive connection stays open. Longer than the idle timeout of the load
    # balancer in front (AWS's ALB: 60 s), so that it never sends a request on a connection the
    # server is closing at that moment, which its client sees as a 502. uvicorn's own is 5 s.
    http_keep_alive_seconds: int = Field(default=75, ge=1)
    # Calls to other services over HTTP, and fetching the identity provider's JWKS.
    outbound_timeout_seconds: float = 10.0

    # Rate limits: requests a minute per member (by the token's subject) and per staff API key
    # (by key id), counted in Redis over a sliding minute; 0 turns one off. Probes are exempt;
    # a request over the limit is answered 429 `RateLimited` with `Retry-After`.
    rate_limit_member_per_minute: int = Field(default=600, ge=0)
    rate_limit_api_key_per_minute: int = Field(default=12_000, ge=0)

    # Events.
    relay_batch_size: int = Field(default=500, ge=1)
    relay_idle_seconds: float = 0.2
    # The relay holds a service's outbox back while its stream has this many entries (every
    # group behind: a worker down, or a bulk load's backlog), and goes on as the groups catch up
    # and the stream is trimmed. Redis memory stays bounded, and no entry ever leaves a stream
    # before every group has acknowledged it.
    stream_max_entries: int = Field(default=1_000_000, ge=1)
    consumer_max_deliveries: int = Field(default=5, ge=1)
    consumer_retry_after_seconds: float = 5.0
    consumer_batch_size: int = Field(default=100, ge=1)

    # Recommender: the share of each list that explores items with little data (Thompson sampling).
    recommender_exploration_share: float = Field(default=0.05, ge=0.0, le=0.5)

    # Marketing exports. On-demand files go to `exports_url` (`file:///abs/folder` or
    # `s3://bucket/prefix`; unset: `<data_dir>/exports`). Scheduled exports may name a folder only
    # under `export_folders_root` (unset: the exports folder), so a key cannot write anywhere on
    # the server. `s3_endpoint_url` points at an S3-compatible store (MinIO, ...); credentials and
    # region come from the standard AWS_* variables. Download links expire after
    # `export_link_seconds` and are signed with `export_link_secret` (unset: derived from the
    # JWT signing secret).
    exports_url: str | None = None
    export_folders_root: Path | None = None
    # The S3 locations (`s3://bucket[/prefix]`) scheduled exports may write at or under, with the
    # server's credentials; `{brand_id}` in one stands for the brand's id, so that each brand
    # writes under its own prefix only. Unset: the exports location when it is in S3, else none.
    export_s3_destinations: list[str] = Field(default_factory=list)
    s3_endpoint_url: str | None = None
    # Each S3 request's connect timeout, and how long it may go without a byte moving; the SDK
    # tries a failed request up to three times.
    s3_timeout_seconds: float = Field(default=5.0, gt=0)
    export_link_seconds: int = Field(default=3_600, ge=1)
    export_link_secret: SecretStr | None = None

    # Webhooks go to public addresses over https only; these networks (CIDRs) may be called
    # although private or loopback, and over http too (tests and `kinfolk dev`: 127.0.0.0/8).
    webhooks_allowed_networks: list[str] = Field(default_factory=list)
    # Delivery: each attempt may take this long in all; a failed one is tried again after each
    # delay of the schedule in turn (give or take a fifth, at random), then the delivery fails.
    webhooks_timeout_seconds: float = Field(default=15.0, gt=0)
    webhooks_retry_schedule_seconds: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1_800.0, 7_200.0, 18_000.0, 36_000.0, 36_000.0],
        min_length=1,
    )
    # A later message about a member waits while an earlier one to the same endpoint is pending,
    # but only while that earlier one is younger than this.
    webhooks_order_hold_seconds: float = Field(default=600.0, ge=0)
    # An endpoint whose every attempt failed for this long is disabled (5 days).
    webhooks_disable_after_seconds: float = Field(default=432_000.0, gt=0)
    # Deliveries one worker process attempts at once, over all endpoints.
    webhooks_max_in_flight: int = Field(default=256, ge=1)
    webhooks_poll_seconds: float = Field(default=0.1, gt=0)
    webhooks_retention_days: int = Field(default=90, ge=1)

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("database_url")
    @classmethod
    def _a_postgres_url(cls, url: str | None) -> str | None:
        # Refused here, with what to change, rather than as a driver error at the first connect.
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in _POSTGRES_SCHEMES:
            raise ValueError(
                f"use a PostgreSQL URL, postgresql://user@host:5432/database (not "
                f"{parts.scheme or 'no'} scheme)"
            )
        query = dict(parse_qsl(parts.query))
        for name, value in query.items():
            if name in ("sslmode", "ssl") and value not in TLS_MODES:
                raise ValueError(f"{name} must be one of {', '.join(TLS_MODES)} (not {value!r})")
        TcpLiveness.of(query)  # libpq's keepalive parameters, refused here when malformed
        return url

    @field_validator("export_s3_destinations")
    @classmethod
    def _s3_locations(cls, locations: list[str]) -> list[str]:
        for location in locations:
            parts = urlsplit(location)
            if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
                raise ValueError(f"use s3://bucket or s3://bucket/prefix (not {location!r})")
        return locations

    @field_validator("redis_url")
    @classmethod
    def _a_redis_url(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in REDIS_SCHEMES:
            raise ValueError(
                "use a Redis URL: redis://host:6379/0, rediss:// for TLS, or unix:///path.sock"
            )
        return url

    @model_validator(mode="after")
    def _shared_secrets_in_production(self) -> Settings:
        # In production the processes (often on several hosts) verify each other's tokens: a
        # secret generated into one data folder would not be the next host's.
        if self.environment != "production" or self.jwt_secret is not None:
            return self
        if self.jwt_algorithm == "HS256":
            raise ValueError(
                "in production set KINFOLK_JWT_SECRET: every process verifies member tokens "
                "(HS256) with it, and derives the service tokens' key from it"
            )
        if self.service_secret is None:
            raise ValueError(
                "in production set KINFOLK_SERVICE_SECRET (or KINFOLK_JWT_SECRET): every "
                "process signs and verifies service tokens with it"
            )
        return self

    def jwt_signing_secret(self) -> str:
        """The HS256 secret: configured, else one generated once and kept in the data folder.

        Keeping it in the data folder lets `kinfolk token` mint tokens that a running
        `kinfolk dev` accepts without any configuration.
        """
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = self.data_dir / "jwt-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    def signing_key(self, configured: SecretStr | None, label: bytes) -> bytes:
        """`configured` when it is set, else a key derived from the JWT signing secret for
        `label` alone: keys derived for different labels never sign what another one means,
        and none of them is the member tokens' secret."""
        if configured is not None:
            return configured.get_secret_value().encode()
        return _derived_key(self.jwt_signing_secret(), label)

    def verifying_keys(
        self, configured: SecretStr | None, accepted: list[SecretStr], label: bytes
    ) -> list[bytes]:
        """The keys that verify what `signing_key(configured, label)` signs: that key first,
        then those a rotation still accepts: `accepted`, and while the key is derived from the
        JWT secret, the keys derived from `jwt_accepted_secrets`."""
        keys = [self.signing_key(configured, label)]
        keys += [secret.get_secret_value().encode() for secret in accepted]
        if configured is None:
            keys += [_derived_key(s.get_secret_value(), label) for s in self.jwt_accepted_secrets]
        return keys


def _derived_key(secret: str, label: bytes) -> bytes:
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_refused(error: ValidationError) -> str:
    """What is wrong with the environment, one `KINFOLK_*` variable a line."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    lines = [f"kinfolk cannot start with these settings ({error.error_count()} to fix):"]
    for problem in error.errors(include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        message = str(problem["msg"]).removeprefix("Value error, ")
        # A rule over several settings names them in its message.
        lines.append(f"  {prefix}{field.upper()}: {message}" if field else f"  {message}")
    return "\n".join(lines)
