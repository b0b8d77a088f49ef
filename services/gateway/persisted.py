"""Persisted documents: the apps may send a hash instead of the query text.

Automatic persisted queries (Apollo's protocol): a request carries
`extensions.persistedQuery = {"version": 1, "sha256Hash": ...}`. Without the query text the hash is
looked up in Redis; an unknown hash answers `PERSISTED_QUERY_NOT_FOUND`, and the app sends the
hash with the text, which is checked against the hash and remembered for
`graphql_persisted_query_days` after its last use.

Registered operations: a brand ships the documents its apps use as a manifest (`<brand id>.json`
in `graphql_operations_dir`, built from the apps' sources). Their hashes always resolve; and in
production a brand whose manifest says `"enforce": true` runs nothing else, so a stolen token
cannot be used to run arbitrary queries.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from services.gateway.errors import GatewayError
from services.kernel.auth import MemberPrincipal
from services.kernel.settings import Settings


@dataclass(frozen=True, slots=True)
class Manifest:
    enforce: bool
    operations: dict[str, str]


def document_hash(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class Manifests:
    """Reads each brand's manifest, again whenever the file changes."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        self._cache: dict[uuid.UUID, tuple[float, Manifest]] = {}

    def of(self, brand_id: uuid.UUID) -> Manifest | None:
        if self._directory is None:
            return None
        path = self._directory / f"{brand_id}.json"
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            return None
        cached = self._cache.get(brand_id)
        if cached is not None and cached[0] == modified:
            return cached[1]
        raw = json.loads(path.read_text(encoding="utf-8"))
        operations = {str(k): str(v) for k, v in dict(raw.get("operations", {})).items()}
        # A manifest whose hashes don't match their documents would run the wrong thing.
        wrong = [h for h, q in operations.items() if document_hash(q) != h]
        if wrong:
            raise ValueError(f"{path}: the hashes of {wrong[:3]} do not match their documents")
        manifest = Manifest(enforce=bool(raw.get("enforce", False)), operations=operations)
        self._cache[brand_id] = (modified, manifest)
        return manifest


def _requested_hash(extensions: dict[str, Any] | None) -> str | None:
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise GatewayError(
            '`extensions.persistedQuery` must be `{"version": 1, "sha256Hash": "..."}`.',
            code="PERSISTED_QUERY_NOT_SUPPORTED",
        )
    value = persisted.get("sha256Hash")
    if not isinstance(value, str) or len(value) != 64:
        raise GatewayError(
            "`sha256Hash` must be the 64 hex digits of the document's SHA-256.",
            code="PERSISTED_QUERY_HASH_INVALID",
        )
    return value.lower()


class PersistedDocuments:
    def __init__(self, redis: Redis, settings: Settings, manifests: Manifests) -> None:
        self._redis = redis
        self._settings = settings
        self._manifests = manifests

    def _key(self, digest: str) -> str:
        return f"kinfolk:gateway:apq:{digest}"

    async def resolve(
        self,
        member: MemberPrincipal | None,
        query: str | None,
        extensions: dict[str, Any] | None,
    ) -> str | None:
        """The document to run; raises a GatewayError the app can act on."""
        digest = _requested_hash(extensions)
        manifest = self._manifests.of(member.brand_id) if member is not None else None
        if manifest is not None and manifest.enforce and self._settings.environment == "production":
            return self._registered_only(manifest, query, digest)
        if digest is None:
            return query
        if manifest is not None and digest in manifest.operations:
            return manifest.operations[digest]
        ttl = self._settings.graphql_persisted_query_days * 86_400
        if query is None:
            stored = await self._redis.get(self._key(digest))
            if stored is None:
                raise GatewayError(
                    "PersistedQueryNotFound: send the query text with its hash once.",
                    code="PERSISTED_QUERY_NOT_FOUND",
                )
            await self._redis.expire(self._key(digest), ttl)
            return stored.decode() if isinstance(stored, bytes) else str(stored)
        if document_hash(query) != digest:
            raise GatewayError(
                "`sha256Hash` is not the SHA-256 of the query text sent with it.",
                code="PERSISTED_QUERY_HASH_MISMATCH",
            )
        if await self._redis.set(self._key(digest), query, ex=ttl, nx=True):
            await self._count_new(member, digest)
        else:
            await self._redis.expire(self._key(digest), ttl)
        return query

    async def _count_new(self, member: MemberPrincipal | None, digest: str) -> None:
        """Charges a newly persisted document to the member's daily allowance."""
        limit = self._settings.graphql_persisted_queries_per_day
        if member is not None:
            day = int(time.time() // 86_400)
            key = f"kinfolk:gateway:apq:new:{member.brand_id}:{member.member_id}:{day}"
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 2 * 86_400)
                added, _ = await pipe.execute()
            if int(added) <= limit:
                return
        await self._redis.delete(self._key(digest))
        raise GatewayError(
            "Persisting documents needs a member token, and at most "
            f"{limit} new ones a day; send the query text without a hash instead.",
            code="PERSISTED_QUERY_LIMIT",
        )

    @staticmethod
    def _registered_only(manifest: Manifest, query: str | None, digest: str | None) -> str:
        digest = digest or (document_hash(query) if query is not None else None)
        if digest is None or digest not in manifest.operations:
            raise GatewayError(
                "This brand runs only its registered operations; send the hash of one of them "
                "in `extensions.persistedQuery`.",
                code="OPERATION_NOT_REGISTERED",
            )
        return manifest.operations[digest]
