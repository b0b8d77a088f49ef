"""What an export file holds, as SQL: one SELECT per file, shaped for its writer.

Every file has `member_id` first, then (deltas) `change` (`entered` / `exited`), the chosen
fields, and `lawful_basis` last: why the rows may be used (`consent:<purpose>` for a marketing
segment, `analytics`, or the lawful basis the export named).

Values are formatted by PostgreSQL, the same way in CSV and NDJSON: times as ISO 8601 in UTC
(`2026-03-01T09:30:00.000000Z`), tags as JSON arrays, traits as JSON objects. Parquet gets typed
columns (timestamps, lists of strings, integers) with the schema written out from the catalog.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

import pyarrow as pa
from sqlalchemy import ColumnElement, Select, Text, and_, cast, func, literal, select, union_all

from services.marketing.fields import FIELDS, FieldType
from services.marketing.models import ExportFormat, MemberView

MEMBER_ID = "member_id"
CHANGE = "change"
LAWFUL_BASIS = "lawful_basis"
ENTERED = "entered"
EXITED = "exited"

_ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'

EXTENSIONS = {
    ExportFormat.CSV: "csv",
    ExportFormat.NDJSON: "ndjson",
    ExportFormat.PARQUET: "parquet",
}
MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv",
    ExportFormat.NDJSON: "application/x-ndjson",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}


class Shape(StrEnum):
    TEXT = "text"  # CSV through COPY: every value as PostgreSQL prints it
    JSON = "json"  # NDJSON: one JSON object per row, built by PostgreSQL
    ARROW = "arrow"  # Parquet: typed values for pyarrow


def shape_of(format: ExportFormat) -> Shape:
    return {
        ExportFormat.CSV: Shape.TEXT,
        ExportFormat.NDJSON: Shape.JSON,
        ExportFormat.PARQUET: Shape.ARROW,
    }[format]


def columns_of(fields: list[str], *, delta: bool) -> list[str]:
    """The file's columns in order (fields already start with member_id)."""
    return [fields[0], *([CHANGE] if delta else []), *fields[1:], LAWFUL_BASIS]


def _value(expression: ColumnElement[Any], type: FieldType, shape: Shape) -> ColumnElement[Any]:
    if type is FieldType.DATETIME and shape is not Shape.ARROW:
        return func.to_char(func.timezone("UTC", expression), _ISO_UTC)
    if type is FieldType.TAGS and shape is Shape.TEXT:
        return cast(func.array_to_json(expression), Text)
    if type in (FieldType.OBJECT, FieldType.UUID) and shape is Shape.ARROW:
        return cast(expression, Text)
    if type is FieldType.OBJECT and shape is Shape.TEXT:
        return cast(expression, Text)
    return expression


def _rows(
    brand_id: uuid.UUID,
    ids: Select[tuple[uuid.UUID]],
    fields: list[str],
    shape: Shape,
    lawful_basis: str,
    change: str | None,
) -> Select[Any]:
    """The members of `ids` with their 360 fields. A LEFT JOIN: a member who exited because
    they were erased is no longer in the 360 and keeps only their id."""
    chosen = ids.subquery("chosen")
    member_id = chosen.c[0]
    columns: list[ColumnElement[Any]] = []
    for name in fields:
        field = FIELDS[name]
        source = member_id if name == MEMBER_ID else field.column
        columns.append(_value(source, field.type, shape).label(name))
        if name == MEMBER_ID and change is not None:
            columns.append(cast(literal(change), Text).label(CHANGE))
    columns.append(cast(literal(lawful_basis), Text).label(LAWFUL_BASIS))
    return (
        select(*columns)
        .select_from(chosen)
        .outerjoin(
            MemberView,
            and_(MemberView.brand_id == brand_id, MemberView.member_id == member_id),
        )
    )


def file_rows(
    brand_id: uuid.UUID,
    fields: list[str],
    shape: Shape,
    lawful_basis: str,
    *,
    members: Select[tuple[uuid.UUID]] | None = None,
    entered: Select[tuple[uuid.UUID]] | None = None,
    exited: Select[tuple[uuid.UUID]] | None = None,
) -> Select[Any]:
    """A full file (`members`) or a delta (`entered` then `exited`)."""
    if members is not None:
        rows = _rows(brand_id, members, fields, shape, lawful_basis, None)
    else:
        assert entered is not None
        assert exited is not None
        parts = union_all(
            _rows(brand_id, entered, fields, shape, lawful_basis, ENTERED),
            _rows(brand_id, exited, fields, shape, lawful_basis, EXITED),
        ).subquery("delta")
        rows = select(*parts.c)
    if shape is not Shape.JSON:
        return rows
    # json_build_object keeps the columns' order, and prints arrays and objects as JSON.
    inner = rows.subquery("file")
    pairs: list[Any] = []
    for column in inner.c:
        pairs.extend([cast(literal(column.name), Text), column])
    return select(cast(func.json_build_object(*pairs), Text))


def _arrow_type(type: FieldType) -> pa.DataType:
    return {
        FieldType.STRING: pa.string(),
        FieldType.INTEGER: pa.int64(),
        FieldType.NUMBER: pa.float64(),
        FieldType.DATETIME: pa.timestamp("us", tz="UTC"),
        FieldType.UUID: pa.string(),
        FieldType.TAGS: pa.list_(pa.string()),
        FieldType.OBJECT: pa.string(),  # JSON text: traits differ from brand to brand
    }[type]


def arrow_schema(fields: list[str], *, delta: bool, metadata: dict[str, str]) -> pa.Schema:
    columns = []
    for name in columns_of(fields, delta=delta):
        if name in (CHANGE, LAWFUL_BASIS):
            columns.append(pa.field(name, pa.string(), nullable=False))
        else:
            columns.append(
                pa.field(name, _arrow_type(FIELDS[name].type), nullable=name != MEMBER_ID)
            )
    return pa.schema(columns, metadata=metadata)
