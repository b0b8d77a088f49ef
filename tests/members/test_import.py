"""Bulk import: NDJSON or CSV, every good line imported, every bad line reported by number."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members import service
from services.members.importing import LineError, parse_import
from services.members.models import Member
from services.registry import SERVICES
from tests.conftest import BrandFixture, MemberFixture, app_for
from tests.members.conftest import outbox_events

URL = "/members/v1/members/import"
NDJSON = {"Content-Type": "application/x-ndjson"}
CSV = {"Content-Type": "text/csv; charset=utf-8"}


def ndjson(*records: Any) -> bytes:
    return b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in records) + b"\n"


async def external_ids(session: AsyncSession) -> list[str | None]:
    rows = await session.scalars(select(Member.external_id).order_by(Member.id))
    return list(rows)


async def test_ndjson_imports_good_lines_and_reports_each_bad_one(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture, session: AsyncSession
) -> None:
    body = ndjson(
        {"external_id": "a", "email": "A@Example.com", "traits": {"vip": True}},  # 1
        b'{"external_id": "b", ',  # 2: not JSON
        {"external_id": "c", "email": "nope"},  # 3: invalid email
        b"",  # 4: blank, skipped
        {"external_id": "a"},  # 5: duplicate of line 1
        {"external_id": "crm-1"},  # 6: already in the brand
        {"external_id": "d", "birthday": "1985-07-01", "interests": ["Hair", "hair"]},  # 7
        b"[1, 2]",  # 8: not an object
        {"external_id": "e", "shoe_size": 38},  # 9: unknown field
        b'{"external_id": "f", "traits": {"big": %d}}' % 2**64,  # 10: beyond 64 bits
    )

    response = await client.post(URL, content=body, headers={**brand.headers, **NDJSON})

    assert response.status_code == 200
    report = response.json()
    assert (report["total"], report["imported"], report["dry_run"]) == (9, 2, False)
    assert [(f["line"], f["error"]) for f in report["failed"]] == [
        (2, "InvalidJSON"),
        (3, "ValidationError"),
        (5, "DuplicateExternalId"),
        (6, "DuplicateExternalId"),
        (8, "ValidationError"),
        (9, "ValidationError"),
        (10, "ValidationError"),
    ]
    details = {f["line"]: f["detail"] for f in report["failed"]}
    assert details[3].startswith("email: value is not a valid email address")
    assert details[5] == "external_id 'a' is already used on line 1 of this file."
    assert details[6] == "A member with external_id 'crm-1' already exists."
    assert details[9] == "shoe_size: Extra inputs are not permitted"
    assert details[10].startswith("traits: Value error, trait 'big' is an integer beyond 64 bits")
    assert await external_ids(session) == ["crm-1", "a", "d"]
    events = await outbox_events(session)
    assert [t for t, _ in events] == ["member.created"] * 3
    imported = {e["external_id"]: e for _, e in events[1:]}
    assert imported["a"]["email"] == "a@example.com"
    assert imported["a"]["traits"] == {"vip": True}
    assert imported["d"]["interests"] == ["hair"]
    assert imported["d"]["birthday"] == "1985-07-01"
    listed = await client.get(
        "/members/v1/members", params={"external_id": "d"}, headers=brand.headers
    )
    assert listed.json()["items"][0]["id"] == imported["d"]["member_id"]


async def test_csv_with_quotes_traits_interests_and_bad_lines(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    body = (
        "\ufeffexternal_id,email,display_name,traits,interests\r\n"  # 1: header (with a BOM)
        'c-1,one@example.com,"Smith, Jo","{""skin"": ""dry"", ""n"": 2}",skincare; Makeup\r\n'  # 2
        'c-2,,"Multi\r\nline name",,\r\n'  # 3-4: one record over two lines
        "c-3,bad-email,,,\r\n"  # 5
        "c-4,,,{not json},\r\n"  # 6
        "c-5,,\r\n"  # 7: too few fields
        "\r\n"  # 8: blank
        "c-1,,,,\r\n"  # 9: duplicate of line 2
        "c-6,,,,"  # 10: no final newline
    ).encode()

    response = await client.post(URL, content=body, headers={**brand.headers, **CSV})

    assert response.status_code == 200
    report = response.json()
    assert (report["total"], report["imported"]) == (7, 3)
    assert report["failed"] == [
        {
            "line": 5,
            "error": "ValidationError",
            "detail": report["failed"][0]["detail"],
        },
        {"line": 6, "error": "InvalidJSON", "detail": report["failed"][1]["detail"]},
        {"line": 7, "error": "InvalidCSV", "detail": "The line has 3 fields; the header has 5."},
        {
            "line": 9,
            "error": "DuplicateExternalId",
            "detail": "external_id 'c-1' is already used on line 2 of this file.",
        },
    ]
    assert report["failed"][0]["detail"].startswith("email:")
    assert report["failed"][1]["detail"].startswith("traits: not valid JSON")
    rows = await session.execute(
        select(
            Member.external_id, Member.email, Member.display_name, Member.traits, Member.interests
        ).order_by(Member.id)
    )
    assert [tuple(r) for r in rows] == [
        ("c-1", "one@example.com", "Smith, Jo", {"skin": "dry", "n": 2}, ["skincare", "makeup"]),
        ("c-2", None, "Multi\r\nline name", {}, []),
        ("c-6", None, None, {}, []),
    ]


async def test_a_dry_run_reports_the_same_and_writes_nothing(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture, session: AsyncSession
) -> None:
    body = ndjson(
        {"external_id": "x"}, {"external_id": "x"}, {"external_id": "crm-1"}, {"email": 1}
    )

    dry = await client.post(
        URL, params={"dry_run": "true"}, content=body, headers={**brand.headers, **NDJSON}
    )

    assert dry.status_code == 200
    assert dry.json()["dry_run"] is True
    assert (dry.json()["total"], dry.json()["imported"]) == (4, 1)
    assert [(f["line"], f["error"]) for f in dry.json()["failed"]] == [
        (2, "DuplicateExternalId"),
        (3, "DuplicateExternalId"),
        (4, "ValidationError"),
    ]
    assert await external_ids(session) == ["crm-1"]
    assert [t for t, _ in await outbox_events(session)] == ["member.created"]

    real = await client.post(URL, content=body, headers={**brand.headers, **NDJSON})
    assert {k: v for k, v in real.json().items() if k != "dry_run"} == {
        k: v for k, v in dry.json().items() if k != "dry_run"
    }


async def test_duplicates_are_found_across_batches(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "IMPORT_BATCH_LINES", 2)
    body = ndjson(*({"external_id": f"m-{n % 5}"} for n in range(7)))  # m-0, m-1 repeat

    for dry_run in ("true", "false"):
        response = await client.post(
            URL, params={"dry_run": dry_run}, content=body, headers={**brand.headers, **NDJSON}
        )
        assert response.status_code == 200
        assert (response.json()["total"], response.json()["imported"]) == (7, 5)
        assert [(f["line"], f["detail"]) for f in response.json()["failed"]] == [
            (6, "external_id 'm-0' is already used on line 1 of this file."),
            (7, "external_id 'm-1' is already used on line 2 of this file."),
        ]
    assert await external_ids(session) == [f"m-{n}" for n in range(5)]
    assert len(await outbox_events(session)) == 5


async def test_a_big_streamed_file_is_imported_in_batches(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    count = service.IMPORT_BATCH_LINES + 7

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, count, 1000):
            yield b"".join(
                orjson.dumps({"external_id": f"big-{n}", "email": f"m{n}@example.com"}) + b"\n"
                for n in range(start, min(start + 1000, count))
            )

    response = await client.post(URL, content=body(), headers={**brand.headers, **NDJSON})

    assert response.status_code == 200
    assert response.json() == {"total": count, "imported": count, "failed": [], "dry_run": False}
    assert len(await external_ids(session)) == count
    assert len(await outbox_events(session)) == count


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("external_id,phone", "Unknown columns: phone. Columns are: external_id, email, "),
        ("email,display_name", "The header must have an external_id column."),
        ("external_id,email,email", "A column appears twice in the header."),
    ],
)
async def test_a_bad_csv_header_refuses_the_whole_file(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    session: AsyncSession,
    header: str,
    detail: str,
) -> None:
    body = f"{header}\nx-1,a@example.com,b\n".encode()
    response = await client.post(URL, content=body, headers={**brand.headers, **CSV})
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidImportFile"
    assert response.json()["detail"].startswith(detail)
    assert await external_ids(session) == []


async def test_csv_that_is_not_utf8_is_refused(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    body = "external_id,display_name\nx,Zoë\n".encode("latin-1")
    response = await client.post(URL, content=body, headers={**brand.headers, **CSV})
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidImportFile"
    assert await external_ids(session) == []


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
async def test_other_content_types_are_415(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession, content_type: str | None
) -> None:
    headers = {**brand.headers, **({"Content-Type": content_type} if content_type else {})}
    response = await client.post(URL, content=ndjson({"external_id": "x"}), headers=headers)
    assert response.status_code == 415
    assert response.json()["error"] == "UnsupportedMediaType"
    assert await external_ids(session) == []


async def test_importing_needs_the_write_scope(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    created = await client.post(
        "/members/v1/api-keys",
        json={"name": "reader", "scopes": ["members:read"]},
        headers=brand.headers,
    )
    reader = {"Authorization": f"Bearer {created.json()['key']}"}
    response = await client.post(
        URL, content=ndjson({"external_id": "x"}), headers={**reader, **NDJSON}
    )
    assert response.status_code == 403
    assert await external_ids(session) == []


@pytest.fixture
async def small_limits(
    base_settings: Settings, runtime: Runtime
) -> AsyncIterator[httpx.AsyncClient]:
    settings = base_settings.model_copy(update={"max_body_bytes": 300, "max_import_bytes": 2000})
    app: FastAPI = app_for(SERVICES, settings, runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
        yield client


async def test_an_import_over_the_limit_is_413_and_imports_nothing(
    small_limits: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    lines = [orjson.dumps({"external_id": f"x-{n}"}) + b"\n" for n in range(200)]

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
        for line in lines:
            yield line

    declared = await small_limits.post(
        URL, content=b"".join(lines), headers={**brand.headers, **NDJSON}
    )
    chunked = await small_limits.post(URL, content=streamed(), headers={**brand.headers, **NDJSON})
    small = await small_limits.post(
        URL, content=b"".join(lines[:10]), headers={**brand.headers, **NDJSON}
    )

    assert declared.status_code == chunked.status_code == 413
    assert chunked.json()["error"] == "PayloadTooLarge"
    assert small.status_code == 200  # the import limit, not the (smaller) default one, applies
    assert small.json()["imported"] == 10
    assert await external_ids(session) == [f"x-{n}" for n in range(10)]


async def test_a_create_over_the_body_limit_is_413(
    small_limits: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    response = await small_limits.post(
        "/members/v1/members",
        json={"external_id": "x", "display_name": "y" * 400},
        headers=brand.headers,
    )
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"
    assert await external_ids(session) == []


CSV_FILE = (
    "\ufeffexternal_id,display_name,traits\n"
    'z-1,"Zoë ""Z"" Martin",\n'
    'z-2,"two\nlines","{""a"": 1}"\n'
    "z-3,x,{bad\n"
    "z-1,dup,\n"
).encode()
NDJSON_FILE = (
    '{"external_id": "n-1", "display_name": "Zoë"}\r\n\n{"external_id": 5}\n{oops\n'.encode()
)


async def read(content_type: str, body: bytes, size: int) -> list[tuple[int, str]]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    out = []
    async for batch in parse_import(content_type, chunks(), 2):
        assert len(batch) <= 2
        for line, record in batch:
            out.append((line, record.code if isinstance(record, LineError) else record.external_id))
    return out


@pytest.mark.parametrize("size", [1, 2, 7, 1 << 20])
async def test_chunk_boundaries_never_change_what_is_read(size: int) -> None:
    assert await read("text/csv", CSV_FILE, size) == [
        (2, "z-1"),
        (3, "z-2"),
        (5, "InvalidJSON"),
        (6, "z-1"),  # duplicates are the service's concern, not the reader's
    ]
    assert await read("application/x-ndjson", NDJSON_FILE, size) == [
        (1, "n-1"),
        (3, "ValidationError"),
        (4, "InvalidJSON"),
    ]
