"""An export's progress, visible while the job's transaction is still open.

The kernel runs a job in one transaction, committed when it returns. That is what the export's
outcome needs: the segment version, its entered/exited events, the finished export row and its
`export.completed` event commit together or not at all. Progress is the exception: rows done
must show in `GET /exports/{id}` while that transaction is open. So progress is written through
a second connection of the same engine in autocommit, each update committed at once and
touching only the progress columns (status `running`, started_at, rows_done, rows_total).

The job's transaction never writes the export row before its last statement, so the two never
wait on each other's row lock. When the session is bound to a single connection (the tests'
shared transaction) there is no second connection: progress then appears with the outcome.
"""

from __future__ import annotations

import time
import uuid
from types import TracebackType
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from services.marketing.models import Export

# At most this often while rows stream: each update is one short statement on its own
# connection, so even a tight interval costs little next to the export.
INTERVAL_SECONDS = 0.5


class Progress:
    def __init__(self, session: AsyncSession, export_id: uuid.UUID) -> None:
        bind = session.bind
        self._engine = bind if isinstance(bind, AsyncEngine) else None
        self._connection: AsyncConnection | None = None
        self._export_id = export_id
        self._last = 0.0
        self._pending: int | None = None

    @property
    def published(self) -> bool:
        """Whether updates reach other connections before the job commits."""
        return self._engine is not None

    async def __aenter__(self) -> Progress:
        if self._engine is not None:
            connection = await self._engine.connect()
            self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def publish(self, **values: Any) -> None:
        """Writes these progress columns now (committed at once)."""
        if self._connection is None:
            return
        await self._connection.execute(
            update(Export).where(Export.id == self._export_id).values(**values)
        )
        self._last = time.monotonic()

    async def rows(self, done: int) -> None:
        """Rows written so far; published at most every INTERVAL_SECONDS."""
        if self._connection is None:
            return
        self._pending = done
        if time.monotonic() - self._last >= INTERVAL_SECONDS:
            await self.publish(rows_done=done)
            self._pending = None
