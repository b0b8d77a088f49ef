"""Idempotency keys: a retried write returns the first response instead of doing the work twice.

A client sends `Idempotency-Key: <key>` with a write. The first request with a key claims it by
inserting a row in the same transaction as the work, and stores its response there before the
commit. So:

- a replay (same key, same request) gets the stored response, byte for byte;
- the same key with a different request is refused with 409 `IdempotencyKeyReused`;
- a concurrent duplicate waits on the row lock of the claim until the first request commits (and
  then replays it) or rolls back (and then does the work itself);
- a request that fails stores nothing: the claim rolls back with the work, so a retry runs again.

Keys are scoped by brand, and within it by caller (the staff, or one member). Each service
keeps the table in its own schema (`idempotency_table`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

import orjson
from fastapi import Header, Response
from pydantic import BaseModel
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import MemberPrincipal, Principal
from services.kernel.errors import Conflict

IDEMPOTENCY_TABLE = "idempotency_keys"
REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Send the same key when retrying; a replay returns the first response.",
    ),
]

# For writes that must never happen twice (redeeming, booking): the key is not optional.
RequiredIdempotencyKeyHeader = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Required. Send the same key when retrying; a replay returns the first "
        "response and does nothing twice.",
    ),
]


class IdempotencyKeyReused(Conflict):
    """This Idempotency-Key was already used with a different request; use a new key."""

    code = "IdempotencyKeyReused"


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        IDEMPOTENCY_TABLE,
        metadata,
        Column("brand_id", UUID(as_uuid=True), nullable=False),
        Column("key", Text, nullable=False),
        Column("request_hash", Text, nullable=False),
        # NULL only inside the claiming transaction: the response is stored before it commits.
        Column("response_status", Integer, nullable=True),
        Column("response_body", LargeBinary, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("brand_id", "key"),
    )


def request_hash(method: str, path: str, payload: BaseModel | None) -> str:
    """A fingerprint of what was asked: the route and the validated body (None for a request
    without one), keys sorted."""
    body = (
        b""
        if payload is None
        else _sorted_json(payload.model_dump(mode="json", exclude_unset=True))
    )
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _sorted_json(value: object) -> bytes:
    """`value` as JSON with its keys sorted. A free-form field (a segment's rule) may hold an
    integer beyond 64 bits, which orjson refuses: the standard library writes those, so that
    the request reaches the validation that answers it, instead of failing here (ASCII, so
    that nothing it holds can fail to encode). Every body orjson takes is written by orjson as
    before, so the fingerprints already stored keep matching."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class IdempotencyStore:
    """Claims keys and stores responses in one service's `idempotency_keys` table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    async def run(
        self,
        session: AsyncSession,
        *,
        caller: Principal,
        key: str | None,
        fingerprint: str,
        status_code: int,
        work: Callable[[], Awaitable[BaseModel]],
    ) -> Response:
        """Runs `work` once per key and answers with its result (or the stored first answer).

        Keys belong to whoever sent them: the brand's staff share one namespace, each member has
        their own, so no caller can claim or replay another's key.
        """
        if key is None:
            return _json_response(status_code, (await work()).model_dump_json().encode())
        brand_id = caller.brand_id
        key = _scoped(caller, key)
        stored = await self._claim(session, brand_id, key, fingerprint)
        if stored is not None:
            response = _json_response(*stored)
            response.headers[REPLAYED_HEADER] = "true"
            return response
        body = (await work()).model_dump_json().encode()
        await session.execute(
            update(self.table)
            .where(self.table.c.brand_id == brand_id, self.table.c.key == key)
            .values(response_status=status_code, response_body=body)
        )
        return _json_response(status_code, body)

    async def _claim(
        self, session: AsyncSession, brand_id: uuid.UUID, key: str, fingerprint: str
    ) -> tuple[int, bytes] | None:
        """None when this request now owns the key, else the stored (status, body) to replay."""
        claimed = await session.scalar(
            insert(self.table)
            .values(brand_id=brand_id, key=key, request_hash=fingerprint)
            .on_conflict_do_nothing(index_elements=["brand_id", "key"])
            .returning(self.table.c.key)
        )
        if claimed is not None:
            return None
        row = (
            await session.execute(
                select(
                    self.table.c.request_hash,
                    self.table.c.response_status,
                    self.table.c.response_body,
                ).where(self.table.c.brand_id == brand_id, self.table.c.key == key)
            )
        ).one()
        if row.request_hash != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used with a different request; use a new key."
            )
        # A committed claim always has its response (both are written in one transaction).
        assert row.response_status is not None
        assert row.response_body is not None
        return row.response_status, row.response_body


def _scoped(caller: Principal, key: str) -> str:
    if isinstance(caller, MemberPrincipal):
        return f"member:{caller.member_id}:{key}"
    return f"staff:{key}"


def _json_response(status_code: int, body: bytes) -> Response:
    return Response(content=body, status_code=status_code, media_type="application/json")
