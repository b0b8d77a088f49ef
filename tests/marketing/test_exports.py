"""Exports: every format read back with a standard reader (csv, json, pyarrow) to the exact
rows, with and without gzip; deltas after members enter, exit and are erased; the consent
filter and the lawful basis that lifts it; progress; signed links that expire; every bad input
refused with nothing started; the `export.completed` event; failures recorded, not stuck.

The member 360 rows are written directly (marketing's own store), except in the test that goes
through the real flow from the members API. Jobs run in the test's session by calling the job's
function, as the worker would.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import Scope, StaffPrincipal
from services.kernel.clients import Peers
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.jobs import QUEUE_NAME
from services.kernel.settings import Settings
from services.marketing.audience.repository import AudienceRepository
from services.marketing.exports import service, tasks
from services.marketing.fields import FIELDS, FieldType
from services.marketing.models import (
    OUTBOX,
    Export,
    MemberView,
    RefreshEvery,
    Segment,
    SegmentPurpose,
    SegmentVersion,
)
from services.members import service as members_service
from services.members.schemas import ApiKeyCreate
from services.registry import SERVICES
from tests.conftest import BrandFixture, app_for, bearer, make_runtime
from tests.marketing.helpers import project, set_consent
from tests.recommender.service_fixtures import MakeMember, make_member

__all__ = ["make_member"]

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
ORDERS_RULE = {"field": "order_count", "op": "gte", "value": 1}
# One field of every type, a personal one among them.
FIELD_SET = [
    "email",
    "display_name",
    "traits",
    "interests",
    "consents",
    "joined_at",
    "order_count",
    "spend_lifetime_minor",
    "churn_probability",
    "tier_id",
    "last_purchase_at",
]
GOLD = uuid.UUID("00000000-0000-4000-8000-00000000beef")


# --- The small brand ------------------------------------------------------------------------


@dataclass
class Brand:
    id: uuid.UUID
    members: dict[str, uuid.UUID]


async def add_member(session: AsyncSession, brand_id: uuid.UUID, **values: Any) -> uuid.UUID:
    member_id = values.pop("member_id", None) or uuid.uuid4()
    session.add(MemberView(brand_id=brand_id, member_id=member_id, refreshed_at=T0, **values))
    await session.flush()
    return member_id


async def small_brand(session: AsyncSession, brand_id: uuid.UUID) -> Brand:
    """Five members: three in the email segment (orders and consent), one without consent,
    one without orders. Bo's name has a comma, quotes and a line break for CSV to carry."""
    consent = ["email_marketing"]
    members = {
        "ana": await add_member(
            session,
            brand_id,
            email="ana@example.com",
            display_name="Ana",
            traits={"skin_type": "dry", "concerns": ["acne"]},
            interests=["skincare", "makeup"],
            consents=[*consent, "push"],
            joined_at=T0,
            order_count=3,
            spend_lifetime_minor=12_345,
            churn_probability=0.25,
            tier_id=GOLD,
            tier="Gold",
            last_purchase_at=T0 + timedelta(days=10, microseconds=7),
        ),
        "bo": await add_member(
            session,
            brand_id,
            email="bo@example.com",
            display_name='Bo, "the" tester\nsecond line',
            consents=consent,
            joined_at=T0 + timedelta(hours=1),
            order_count=1,
            spend_lifetime_minor=900,
            churn_probability=0.1,
        ),
        "cy": await add_member(
            session,
            brand_id,
            email="cy@example.com",
            display_name="Cy",
            order_count=5,
            spend_lifetime_minor=50_000,
        ),
        "di": await add_member(
            session, brand_id, email="di@example.com", display_name="Di", consents=consent
        ),
        "ed": await add_member(session, brand_id, consents=consent, order_count=2),
    }
    return Brand(brand_id, members)


async def add_segment(
    session: AsyncSession,
    brand_id: uuid.UUID,
    rule: dict[str, Any] | None = None,
    purpose: SegmentPurpose = SegmentPurpose.EMAIL_MARKETING,
) -> Segment:
    segment = Segment(
        id=uuid.uuid4(),
        brand_id=brand_id,
        name="Buyers who said yes to email",
        rule=rule or ORDERS_RULE,
        uses=[],
        purpose=purpose,
        refresh=RefreshEvery.MANUAL,
        version=0,
    )
    session.add(segment)
    await session.flush()
    return segment


async def key_with(session: AsyncSession, brand: BrandFixture, *scopes: Scope) -> str:
    _, key = await members_service.create_api_key(
        session, brand.id, ApiKeyCreate(name="limited", scopes=list(scopes))
    )
    await session.commit()
    return key


def staff(brand_id: uuid.UUID, *scopes: Scope) -> StaffPrincipal:
    return StaffPrincipal(
        brand_id=brand_id,
        key_id=uuid.uuid4(),
        scopes=frozenset(s.value for s in scopes or (Scope.ADMIN,)),
    )


# --- Reading files back -----------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expected_row(
    view: MemberView | None,
    member_id: uuid.UUID,
    fields: list[str],
    basis: str,
    change: str | None = None,
) -> dict[str, Any]:
    """The row a file should hold, in canonical Python values."""
    row: dict[str, Any] = {"member_id": str(member_id)}
    if change is not None:
        row["change"] = change
    for name in fields:
        value = getattr(view, name) if view is not None else None
        if value is None:
            row[name] = None
        elif FIELDS[name].type is FieldType.DATETIME:
            row[name] = _iso(value)
        elif FIELDS[name].type is FieldType.UUID:
            row[name] = str(value)
        else:
            row[name] = value
    row["lawful_basis"] = basis
    return row


def _typed(name: str, value: Any) -> Any:
    """A CSV or JSON value as canonical Python."""
    if name in ("member_id", "change", "lawful_basis") or value is None:
        return value
    kind = FIELDS[name].type
    if kind in (FieldType.TAGS, FieldType.OBJECT) and isinstance(value, str):
        return json.loads(value)
    if kind is FieldType.INTEGER:
        return int(value)
    if kind is FieldType.NUMBER:
        return float(value)
    if kind is FieldType.DATETIME and isinstance(value, datetime):
        return _iso(value)
    return value


def read_rows(content: bytes, format: str, gzipped: bool) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of a file, through the standard reader of its format."""
    if gzipped:
        assert content[:2] == b"\x1f\x8b"
        content = gzip.decompress(content)
    if format == "csv":
        reader = csv.DictReader(io.StringIO(content.decode(), newline=""))
        rows = [
            {name: _typed(name, value if value != "" else None) for name, value in row.items()}
            for row in reader
        ]
        return list(reader.fieldnames or []), rows
    if format == "ndjson":
        lines = content.decode().splitlines()
        parsed = [json.loads(line) for line in lines]
        columns = list(parsed[0]) if parsed else []
        return columns, [{k: _typed(k, v) for k, v in row.items()} for row in parsed]
    table = pq.read_table(io.BytesIO(content))
    return table.column_names, [
        {k: _typed(k, v) for k, v in row.items()} for row in table.to_pylist()
    ]


def by_member(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: (row["member_id"], row.get("change") or ""))


async def views(session: AsyncSession, brand_id: uuid.UUID) -> dict[uuid.UUID, MemberView]:
    found = await session.scalars(
        select(MemberView)
        .where(MemberView.brand_id == brand_id)
        .execution_options(populate_existing=True)
    )
    return {view.member_id: view for view in found}


# --- Running ----------------------------------------------------------------------------------


async def post_export(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> httpx.Response:
    payload = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in body.items()}
    return await client.post("/marketing/v1/exports", json=payload, headers=headers)


async def export_and_run(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    headers: dict[str, str],
    **body: Any,
) -> dict[str, Any]:
    """POST, run the job's function, GET: the completed export as the API shows it."""
    queued = await post_export(client, headers, **body)
    assert queued.status_code == 202, queued.text
    export_id = uuid.UUID(queued.json()["id"])
    finished = await service.run_export(session, export_id, settings)
    assert finished is not None
    await session.commit()
    shown = await client.get(f"/marketing/v1/exports/{export_id}", headers=headers)
    assert shown.status_code == 200, shown.text
    answer: dict[str, Any] = shown.json()
    assert answer["status"] == "completed", answer
    return answer


async def download(client: httpx.AsyncClient, answer: dict[str, Any]) -> bytes:
    response = await client.get(answer["download_url"])
    assert response.status_code == 200, response.text
    return response.content


# --- Formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["csv", "ndjson", "parquet"])
async def test_each_format_reads_back_to_the_segments_rows(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
    format: str,
) -> None:
    world = await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    known = await views(session, brand.id)
    expected = by_member(
        [
            expected_row(
                known[world.members[n]], world.members[n], FIELD_SET, "consent:email_marketing"
            )
            for n in ("ana", "bo", "ed")
        ]
    )
    sizes = set()
    for gzipped in (False, True):
        answer = await export_and_run(
            client,
            session,
            base_settings,
            brand.headers,
            segment_id=segment.id,
            fields=FIELD_SET,
            format=format,
            gzip=gzipped,
        )
        content = await download(client, answer)
        columns, rows = read_rows(content, format, gzipped and format != "parquet")
        assert columns == ["member_id", *FIELD_SET, "lawful_basis"]
        assert by_member(rows) == expected
        assert (answer["rows_done"], answer["rows_total"]) == (3, 3)
        assert answer["bytes"] == len(content)
        assert answer["version"] == (1 if not gzipped else 2)
        if format == "parquet":
            parquet = pq.ParquetFile(io.BytesIO(content))
            metadata = parquet.schema_arrow.metadata
            assert metadata[b"lawful_basis"] == b"consent:email_marketing"
            codec = parquet.metadata.row_group(0).column(0).compression
            assert codec == ("GZIP" if gzipped else "SNAPPY")
        sizes.add(len(content))
    assert len(sizes) == 2  # gzip changed the bytes


async def test_member_id_comes_first_and_an_empty_segment_is_a_file_of_headers(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    await small_brand(session, brand.id)
    nobody = await add_segment(
        session, brand.id, {"field": "order_count", "op": "gte", "value": 99}
    )
    await session.commit()
    for format in ("csv", "ndjson", "parquet"):
        answer = await export_and_run(
            client,
            session,
            base_settings,
            brand.headers,
            segment_id=nobody.id,
            fields=["tier", "member_id"],
            format=format,
        )
        assert answer["fields"] == ["member_id", "tier"]
        assert (answer["rows_done"], answer["rows_total"]) == (0, 0)
        content = await download(client, answer)
        columns, rows = read_rows(content, format, False)
        assert rows == []
        if format != "ndjson":  # an empty NDJSON file has no line to name its keys
            assert columns == ["member_id", "tier", "lawful_basis"]
        else:
            assert content == b""


# --- Deltas and consent -----------------------------------------------------------------------


async def test_a_delta_has_who_entered_and_who_exited_and_the_erased_keep_only_their_id(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    world = await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    first = await export_and_run(
        client, session, base_settings, brand.headers, segment_id=segment.id, fields=["email"]
    )
    assert first["version"] == 1
    m = world.members
    # Di buys (enters), Bo withdraws consent (exits, still in the 360), Ed is erased (exits,
    # gone from the 360); Ana stays.
    known = await views(session, brand.id)
    known[m["di"]].order_count = 1
    known[m["bo"]].consents = []
    await AudienceRepository(session).erase(brand.id, m["ed"], utcnow())
    await session.commit()

    fields = ["email", "order_count", "consents", "joined_at"]
    for format in ("csv", "ndjson", "parquet"):
        answer = await export_and_run(
            client,
            session,
            base_settings,
            brand.headers,
            segment_id=segment.id,
            fields=fields,
            format=format,
            mode="delta",
            since_version=1,
        )
        known = await views(session, brand.id)
        basis = "consent:email_marketing"
        expected = by_member(
            [
                expected_row(known[m["di"]], m["di"], fields, basis, "entered"),
                expected_row(known[m["bo"]], m["bo"], fields, basis, "exited"),
                expected_row(None, m["ed"], fields, basis, "exited"),
            ]
        )
        columns, rows = read_rows(await download(client, answer), format, False)
        assert columns == ["member_id", "change", *fields, "lawful_basis"]
        assert by_member(rows) == expected
        assert (answer["mode"], answer["since_version"]) == ("delta", 1)
        assert (answer["rows_done"], answer["rows_total"]) == (3, 3)

    # Since the version just made: nothing changed.
    latest = answer["version"]
    quiet = await export_and_run(
        client,
        session,
        base_settings,
        brand.headers,
        segment_id=segment.id,
        mode="delta",
        since_version=latest,
    )
    assert quiet["rows_total"] == 0
    # Since 0: everyone in the segment now, as entered.
    everyone = await export_and_run(
        client, session, base_settings, brand.headers, segment_id=segment.id, mode="delta",
        since_version=0,
    )  # fmt: skip
    _, rows = read_rows(await download(client, everyone), "csv", False)
    assert sorted((row["member_id"], row["change"]) for row in rows) == sorted(
        [(str(m["ana"]), "entered"), (str(m["di"]), "entered")]
    )


async def test_consent_filters_marketing_segments_unless_a_lawful_basis_is_named(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    world = await small_brand(session, brand.id)
    email = await add_segment(session, brand.id)
    analytics = await add_segment(session, brand.id, purpose=SegmentPurpose.ANALYTICS)
    await session.commit()
    m = world.members

    async def members_of(**body: Any) -> tuple[set[str], set[str], dict[str, Any]]:
        answer = await export_and_run(client, session, base_settings, brand.headers, **body)
        _, rows = read_rows(await download(client, answer), body.get("format", "csv"), False)
        return {r["member_id"] for r in rows}, {r["lawful_basis"] for r in rows}, answer

    consented, basis, _ = await members_of(segment_id=email.id)
    assert consented == {str(m["ana"]), str(m["bo"]), str(m["ed"])}  # Cy gave no consent
    assert basis == {"consent:email_marketing"}

    lawful, basis, answer = await members_of(
        segment_id=email.id, lawful_basis="contract: order updates", format="parquet"
    )
    assert lawful == consented | {str(m["cy"])}
    assert basis == {"contract: order updates"}
    assert answer["lawful_basis"] == "contract: order updates"
    content = await download(client, answer)
    metadata = pq.ParquetFile(io.BytesIO(content)).schema_arrow.metadata
    assert metadata[b"lawful_basis"] == b"contract: order updates"

    everyone, basis, _ = await members_of(segment_id=analytics.id)
    assert everyone == consented | {str(m["cy"])}
    assert basis == {"analytics"}


async def test_through_the_real_flow_from_the_members_api(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
    make_member: MakeMember,
) -> None:
    ana = await make_member("ana", email="ana@example.com", display_name="Ana")
    bo = await make_member("bo", email="bo@example.com", display_name="Bo")
    await set_consent(client, brand, ana, "email_marketing", True)
    await project(session)
    segment = await add_segment(
        session, brand.id, {"field": "status", "op": "eq", "value": "active"}
    )
    await session.commit()
    answer = await export_and_run(
        client,
        session,
        base_settings,
        brand.headers,
        segment_id=segment.id,
        fields=["external_id", "email", "consents"],
    )
    _, rows = read_rows(await download(client, answer), "csv", False)
    assert rows == [
        {
            "member_id": str(ana.id),
            "external_id": "ana",
            "email": "ana@example.com",
            "consents": ["email_marketing"],
            "lawful_basis": "consent:email_marketing",
        }
    ]
    assert str(bo.id) not in {row["member_id"] for row in rows}


# --- The job: event, progress, failures -------------------------------------------------------


async def test_a_completed_export_sends_its_event_and_reads_as_done(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    queued = await post_export(
        client, brand.headers, segment_id=segment.id, fields=["tier"], format="ndjson", gzip=True
    )
    assert queued.status_code == 202, queued.text
    body = queued.json()
    export_id = uuid.UUID(body["id"])
    assert body["status"] == "queued"
    assert (body["rows_done"], body["rows_total"], body["download_url"]) == (0, None, None)
    assert body["links"]["self"] == f"http://kinfolk.test/marketing/v1/exports/{export_id}"

    finished = await service.run_export(session, export_id, base_settings)
    assert finished is not None
    table = OUTBOX.table
    events = (
        await session.execute(
            select(table.c.brand_id, table.c.payload).where(table.c.type == "export.completed")
        )
    ).all()
    assert len(events) == 1
    brand_id, payload = events[0]
    assert brand_id == brand.id
    assert payload["data"] == {
        "export_id": str(export_id),
        "segment_id": str(segment.id),
        "segment_version": 1,
        "format": "ndjson",
        "gzip": True,
        "mode": "full",
        "rows": 3,
        "bytes": finished.bytes,
        "schedule_id": None,
    }
    assert finished.location is not None
    assert finished.location.endswith(f"{segment.id}-v1-full-{export_id}.ndjson.gz")
    assert finished.started_at is not None
    assert finished.completed_at is not None

    # Running it again (a retried job) changes nothing: no second version, no second event.
    again = await service.run_export(session, export_id, base_settings)
    assert again is not None
    assert again.version == 1
    count = await session.scalar(
        select(func.count()).select_from(table).where(table.c.type == "export.completed")
    )
    assert count == 1


async def test_a_failed_export_says_why_and_leaves_no_version_events_or_file(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
    tmp_path: Any,
) -> None:
    await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    queued = await post_export(client, brand.headers, segment_id=segment.id)
    export_id = uuid.UUID(queued.json()["id"])
    # Where files go is a plain file, not a folder: the write fails after the version was made.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    broken = base_settings.model_copy(update={"exports_url": blocker.as_uri()})
    failed = await service.run_export(session, export_id, broken)
    assert failed is not None
    assert failed.status.value == "failed"
    assert failed.error is not None
    assert failed.error.startswith("NotADirectoryError: [Errno 20] Cannot create directory")
    assert failed.completed_at is not None
    assert failed.location is None
    await session.refresh(segment)
    assert segment.version == 0
    versions = await session.scalar(
        select(func.count())
        .select_from(SegmentVersion)
        .where(SegmentVersion.segment_id == segment.id)
    )
    assert versions == 0
    events = await session.scalar(select(func.count()).select_from(OUTBOX.table))
    assert events == 0
    assert list(tmp_path.iterdir()) == [blocker]

    # A segment deleted while its export waited: failed, with the segment's error.
    queued = await post_export(client, brand.headers, segment_id=segment.id)
    segment.deleted_at = utcnow()
    await session.commit()
    gone = await service.run_export(session, uuid.UUID(queued.json()["id"]), base_settings)
    assert gone is not None
    assert gone.status.value == "failed"
    assert gone.error is not None
    assert gone.error.startswith("SegmentNotFound")
    shown = await client.get(f"/marketing/v1/exports/{gone.id}", headers=brand.headers)
    assert (shown.json()["status"], shown.json()["download_url"]) == ("failed", None)


async def test_the_job_retries_an_export_its_request_has_not_committed_yet(
    session: AsyncSession, base_settings: Settings
) -> None:
    from arq import Retry

    with pytest.raises(Retry):
        await tasks.run_export(session, export_id=str(uuid.uuid4()), peers=Peers(base_settings))


# --- Links ------------------------------------------------------------------------------------


async def test_download_links_expire_and_refuse_tampering(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    answer = await export_and_run(
        client, session, base_settings, brand.headers, segment_id=segment.id, fields=["email"]
    )
    url = httpx.URL(answer["download_url"])
    expires = int(url.params["expires"])
    signature = url.params["signature"]
    assert expires - utcnow().timestamp() == pytest.approx(3_600, abs=5)
    assert answer["download_expires_at"] is not None
    assert (await client.get(url)).status_code == 200
    # No API key needed: the signature is the permission.
    assert "authorization" not in {k.lower() for k in client.headers}

    async def refused(**params: Any) -> str:
        response = await client.get(url.copy_merge_params(params))
        assert response.status_code == 403, response.text
        code: str = response.json()["error"]
        return code

    assert (
        await refused(signature=signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB"))
        == "ExportLinkInvalid"
    )
    assert await refused(expires=expires + 3_600) == "ExportLinkInvalid"
    other = await client.get(str(url).replace(answer["id"], str(uuid.uuid4())))
    assert (other.status_code, other.json()["error"]) == (403, "ExportLinkInvalid")

    later = utcnow() + timedelta(seconds=3_601)
    monkeypatch.setattr("services.marketing.exports.links.utcnow", lambda: later)
    assert await refused() == "ExportLinkExpired"
    fresh = await client.get(f"/marketing/v1/exports/{answer['id']}", headers=brand.headers)
    assert (await client.get(fresh.json()["download_url"])).status_code == 200

    # A key that may not read a field of the file gets no link to it.
    reader = await key_with(session, brand, Scope.MARKETING_READ)
    limited = await client.get(f"/marketing/v1/exports/{answer['id']}", headers=bearer(reader))
    assert limited.status_code == 200
    assert (limited.json()["status"], limited.json()["download_url"]) == ("completed", None)


async def test_a_download_from_an_s3_store_that_does_not_answer_is_a_503(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
    database: Database,
    redis: Redis,
) -> None:
    await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    answer = await export_and_run(
        client, session, base_settings, brand.headers, segment_id=segment.id, fields=["email"]
    )
    export = await session.get(Export, uuid.UUID(answer["id"]))
    assert export is not None
    export.location = "s3://kinfolk-exports/brand/export.csv"
    await session.commit()
    # Nothing listens on port 9 here: the store refuses every connection.
    settings = base_settings.model_copy(
        update={"s3_endpoint_url": "http://127.0.0.1:9", "s3_timeout_seconds": 1}
    )
    app = app_for(SERVICES, settings, make_runtime(settings, database, redis))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as other:
        response = await other.get(answer["download_url"])
    assert (response.status_code, response.json()["error"]) == (503, "ServiceUnavailable")
    assert "try the link again" in response.json()["detail"]


# --- Bad input --------------------------------------------------------------------------------


async def test_bad_exports_are_refused_with_the_path_and_nothing_starts(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    base_settings: Settings,
    redis: Redis,
) -> None:
    await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    theirs = await add_segment(session, other_brand.id)
    deleted = await add_segment(session, brand.id)
    deleted.deleted_at = utcnow()
    await session.commit()
    done = await export_and_run(
        client, session, base_settings, brand.headers, segment_id=segment.id
    )
    await redis.delete(QUEUE_NAME)
    marketer = bearer(await key_with(session, brand, Scope.MARKETING_WRITE))
    reader = bearer(await key_with(session, brand, Scope.MARKETING_READ))
    before = await session.scalar(select(func.count()).select_from(Export))
    assert before is not None

    cases: list[tuple[dict[str, str], dict[str, Any], int, str, str | None]] = [
        (brand.headers, {"segment_id": uuid.uuid4()}, 404, "SegmentNotFound", None),
        (brand.headers, {"segment_id": theirs.id}, 404, "SegmentNotFound", None),
        (brand.headers, {"segment_id": deleted.id}, 404, "SegmentNotFound", None),
        (brand.headers, {"segment_id": segment.id, "fields": ["tier", "shoe_size"]}, 422,
         "UnknownField", "fields[1]"),
        (brand.headers, {"segment_id": segment.id, "fields": ["tier", "tier"]}, 422,
         "DuplicateField", "fields[1]"),
        (marketer, {"segment_id": segment.id, "fields": ["tier", "email"]}, 403,
         "FieldNotReadable", "fields[1]"),
        (marketer, {"segment_id": segment.id, "fields": ["traits"]}, 403,
         "FieldNotReadable", "fields[0]"),
        (brand.headers, {"segment_id": segment.id, "mode": "delta"}, 422,
         "SinceVersionRequired", "since_version"),
        (brand.headers, {"segment_id": segment.id, "mode": "delta", "since_version": 7}, 422,
         "UnknownVersion", "since_version"),
        (brand.headers, {"segment_id": segment.id, "since_version": 1}, 422,
         "SinceVersionNotForFull", "since_version"),
        (brand.headers, {"segment_id": segment.id, "mode": "delta", "since_version": 1,
                         "lawful_basis": "contract"}, 422, "LawfulBasisNotForDelta",
         "lawful_basis"),
        (brand.headers, {"segment_id": segment.id, "format": "xlsx"}, 422, "ValidationError", None),
        (brand.headers, {"segment_id": segment.id, "lawful_basis": ""}, 422, "ValidationError",
         None),
        (brand.headers, {"segment_id": segment.id, "mode": "delta", "since_version": -1}, 422,
         "ValidationError", None),
        (reader, {"segment_id": segment.id}, 403, "Forbidden", None),
    ]  # fmt: skip
    for headers, body, status, code, path in cases:
        response = await post_export(client, headers, **body)
        assert (response.status_code, response.json()["error"]) == (status, code), body
        if path is not None:
            assert response.json()["detail"]["path"] == path, body
    # Marketing keys may export what is not personal.
    allowed = await post_export(client, marketer, segment_id=segment.id, fields=["tier"])
    assert allowed.status_code == 202, allowed.text
    assert await session.scalar(select(func.count()).select_from(Export)) == before + 1
    assert await redis.zcard(QUEUE_NAME) == 1
    assert done["version"] == 1


async def test_an_idempotency_key_queues_one_export(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, redis: Redis
) -> None:
    await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    headers = {**brand.headers, "Idempotency-Key": "export-1"}
    first = await post_export(client, headers, segment_id=segment.id, fields=["tier"])
    again = await post_export(client, headers, segment_id=segment.id, fields=["tier"])
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await post_export(client, headers, segment_id=segment.id, fields=["locale"])
    assert (other.status_code, other.json()["error"]) == (409, "IdempotencyKeyReused")
    assert await session.scalar(select(func.count()).select_from(Export)) == 1
    assert await redis.zcard(QUEUE_NAME) == 1
    listed = await client.get("/marketing/v1/exports", headers=brand.headers)
    assert [e["id"] for e in listed.json()["items"]] == [first.json()["id"]]
