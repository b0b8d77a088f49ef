"""The three writers: rows stream from PostgreSQL to the file, a bounded piece at a time.

- CSV: `COPY (SELECT ...) TO STDOUT WITH CSV HEADER`; PostgreSQL formats and quotes every row,
  and each chunk it sends goes straight to the file. Nothing is parsed in Python.
- NDJSON: a server-side cursor over rows that PostgreSQL already made JSON text, in batches.
- Parquet: a server-side cursor in batches, each a pyarrow RecordBatch (a row group) written
  with the explicit schema.

All three run on the session's own connection, inside the job's transaction, so they read the
segment version the job has just written. Memory is one batch (or one COPY chunk), whatever the
segment's size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import driver_connection, driver_sql
from services.marketing.exports.storage import FileWriter

# Rows per cursor fetch and per Parquet row group: a few MB of Python objects at most.
BATCH_ROWS = 10_000

OnRows = Callable[[int], Awaitable[None]]


async def write_csv(
    session: AsyncSession, statement: Select[Any], out: FileWriter, on_rows: OnRows
) -> int:
    sql, args = driver_sql(session, statement)
    connection: asyncpg.Connection = await driver_connection(session)
    lines = 0

    async def sink(chunk: bytes) -> None:
        nonlocal lines
        out.write(chunk)
        # Progress only: a quoted value may hold a line break, so COPY's own count is the total.
        lines += chunk.count(b"\n")
        await on_rows(max(lines - 1, 0))

    status: str = await connection.copy_from_query(
        sql, *args, output=sink, format="csv", header=True
    )
    return int(status.rsplit(" ", 1)[-1])


async def write_ndjson(
    session: AsyncSession, statement: Select[Any], out: FileWriter, on_rows: OnRows
) -> int:
    sql, args = driver_sql(session, statement)
    connection: asyncpg.Connection = await driver_connection(session)
    done = 0
    cursor = await connection.cursor(sql, *args)
    while batch := await cursor.fetch(BATCH_ROWS):
        out.write(("\n".join(record[0] for record in batch) + "\n").encode())
        done += len(batch)
        await on_rows(done)
    return done


async def write_parquet(
    session: AsyncSession,
    statement: Select[Any],
    out: FileWriter,
    on_rows: OnRows,
    *,
    schema: pa.Schema,
    compression: str,
) -> int:
    sql, args = driver_sql(session, statement)
    connection: asyncpg.Connection = await driver_connection(session)
    done = 0
    cursor = await connection.cursor(sql, *args)
    with pq.ParquetWriter(out.stream, schema, compression=compression) as writer:
        while batch := await cursor.fetch(BATCH_ROWS):
            arrays = [
                pa.array([record[i] for record in batch], type=field.type)
                for i, field in enumerate(schema)
            ]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            done += len(batch)
            await on_rows(done)
        if done == 0:
            # An empty file still carries its schema (and the lawful basis in its metadata).
            writer.write_table(schema.empty_table())
    return done
