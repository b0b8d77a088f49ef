"""Reading an import file: NDJSON or CSV, streamed, validated line by line.

The parser never holds the file: it turns the body's chunks into batches of
`(line number, MemberCreate | LineError)` and the service writes each batch before reading on, so
memory stays flat however big the file is. Line numbers are 1-based physical lines of the file
(a CSV header is line 1; a CSV record spanning lines is reported at its first line).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from services.kernel.errors import UnsupportedMediaType
from services.members.errors import InvalidImportFile
from services.members.schemas import MemberCreate

NDJSON = "application/x-ndjson"
CSV = "text/csv"
_NDJSON_TYPES = frozenset({NDJSON, "application/ndjson"})
_COLUMNS = tuple(MemberCreate.model_fields)
# Records parsed before they are handed on, so even a body that arrives as one huge chunk (an
# in-process client sends it that way) is validated and written a batch at a time.
_PIECE = 1_000


@dataclass(frozen=True, slots=True)
class LineError:
    code: str
    detail: str


ParsedLine = tuple[int, MemberCreate | LineError]
Batches = AsyncIterator[list[ParsedLine]]


def describe(exc: ValidationError) -> str:
    """A pydantic error as one line a person can act on: `field: problem; field: problem`."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"])
        parts.append(f"{location}: {error['msg']}" if location else error["msg"])
    return "; ".join(parts)


def parse_import(
    content_type: str | None, chunks: AsyncIterator[bytes], batch_lines: int
) -> Batches:
    """Batches of at most `batch_lines` parsed records; 415 for a content type it cannot read."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in _NDJSON_TYPES:
        return _batched(_ndjson(chunks), batch_lines)
    if media_type == CSV:
        return _batched(_csv(chunks), batch_lines)
    raise UnsupportedMediaType(
        f"Send the file as {NDJSON} (one JSON object per line) or {CSV} (with a header row)."
    )


async def _batched(pieces: Batches, size: int) -> Batches:
    batch: list[ParsedLine] = []
    async for piece in pieces:
        batch.extend(piece)
        while len(batch) >= size:
            yield batch[:size]
            batch = batch[size:]
    if batch:
        yield batch


# --- NDJSON ---------------------------------------------------------------------------------


async def _ndjson(chunks: AsyncIterator[bytes]) -> Batches:
    # Parts of a line not yet ended, joined once its newline arrives (no quadratic concatenation).
    partial: list[bytes] = []
    line = 0
    async for chunk in chunks:
        if b"\n" not in chunk:
            partial.append(chunk)
            continue
        lines = chunk.split(b"\n")
        lines[0] = b"".join([*partial, lines[0]])
        partial = [lines.pop()]
        parsed: list[ParsedLine] = []
        for raw in lines:
            line += 1
            record = _ndjson_record(raw)
            if record is not None:
                parsed.append((line, record))
                if len(parsed) == _PIECE:
                    yield parsed
                    parsed = []
        yield parsed
    last = b"".join(partial)
    record = _ndjson_record(last)
    if record is not None:
        yield [(line + 1, record)]


def _ndjson_record(raw: bytes) -> MemberCreate | LineError | None:
    if not raw.strip():
        return None  # blank lines (and a final newline) are not records
    try:
        return MemberCreate.model_validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            return LineError("InvalidJSON", f"The line is not valid JSON: {describe(exc)}")
        return LineError("ValidationError", describe(exc))


# --- CSV ------------------------------------------------------------------------------------


async def _csv(chunks: AsyncIterator[bytes]) -> Batches:
    """CSV records, cut at newlines outside quotes so a quoted field may span lines."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    header: list[str] | None = None
    record: list[str] = []  # physical lines of the record being read
    record_start = 1
    inside_quotes = False
    partial = ""
    line = 0

    def records(text: str, final: bool) -> list[tuple[int, list[str]]]:
        nonlocal partial, record, record_start, inside_quotes, line
        lines = (partial + text).split("\n")
        partial = "" if final else lines.pop()
        done = []
        for physical in lines:
            if final and not physical:
                continue
            line += 1
            if not record:
                record_start = line
            record.append(physical + "\n")
            # An odd number of quotes opens (or closes) a quoted field that spans the newline.
            if physical.count('"') % 2:
                inside_quotes = not inside_quotes
            if not inside_quotes:
                done.append((record_start, record))
                record = []
        return done

    def parsed(done: list[tuple[int, list[str]]]) -> Iterator[list[ParsedLine]]:
        nonlocal header
        out: list[ParsedLine] = []
        for start, lines in done:
            try:
                row = next(csv.reader(lines, strict=True), [])
            except csv.Error as exc:
                out.append((start, LineError("InvalidCSV", f"The line is not valid CSV: {exc}.")))
                continue
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if header is None:
                header = _header(row)
                continue
            out.append((start, _csv_record(header, row)))
            if len(out) == _PIECE:
                yield out
                out = []
        yield out

    try:
        async for chunk in chunks:
            for piece in parsed(records(decoder.decode(chunk), final=False)):
                yield piece
        for piece in parsed(records(decoder.decode(b"", final=True), final=True)):
            yield piece
    except UnicodeDecodeError as exc:
        raise InvalidImportFile(f"The file is not UTF-8 text (near line {line + 1}).") from exc
    if record:
        yield [(record_start, LineError("InvalidCSV", "A quoted field is never closed."))]


def _header(row: list[str]) -> list[str]:
    names = [cell.strip() for cell in row]
    unknown = sorted(set(names) - set(_COLUMNS))
    if unknown:
        raise InvalidImportFile(
            f"Unknown columns: {', '.join(unknown)}. Columns are: {', '.join(_COLUMNS)}."
        )
    if len(set(names)) != len(names):
        raise InvalidImportFile("A column appears twice in the header.")
    if "external_id" not in names:
        raise InvalidImportFile("The header must have an external_id column.")
    return names


def _csv_record(header: list[str], row: list[str]) -> MemberCreate | LineError:
    if len(row) != len(header):
        return LineError(
            "InvalidCSV", f"The line has {len(row)} fields; the header has {len(header)}."
        )
    data: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=True):
        if cell == "":
            continue  # an empty cell leaves the field unset
        if name == "traits":
            try:
                data[name] = orjson.loads(cell)
            except orjson.JSONDecodeError as exc:
                return LineError("InvalidJSON", f"traits: not valid JSON ({exc}).")
        elif name == "interests":
            data[name] = cell.split(";")
        else:
            data[name] = cell
    try:
        return MemberCreate.model_validate(data)
    except ValidationError as exc:
        return LineError("ValidationError", describe(exc))
