"""Scheduled exports: the CRUD, destinations a key may and may not name, runs into a folder
and into an S3 bucket (moto's S3 server on this machine) writing the same files as on-demand
exports, deltas that follow each run's version; and on-demand exports kept in S3, downloaded
through the signed link.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastapi import FastAPI
from moto.server import ThreadedMotoServer
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.auth import Scope
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.marketing.exports import service
from services.marketing.exports.errors import DestinationNotAllowed
from services.marketing.models import ExportSchedule
from services.registry import SERVICES
from tests.conftest import BrandFixture, app_for, bearer, make_runtime
from tests.marketing.test_exports import (
    add_segment,
    key_with,
    read_rows,
    small_brand,
    views,
)

BUCKET = "kinfolk-exports"


def _schedules_url() -> str:
    return "/marketing/v1/export-schedules"


async def _create(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> httpx.Response:
    payload = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in body.items()}
    return await client.post(_schedules_url(), json=payload, headers=headers)


def _root(settings: Settings) -> Path:
    return (settings.data_dir / "exports").resolve()


# --- CRUD and bad input -----------------------------------------------------------------------


async def test_schedules_are_created_read_changed_and_deleted(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    folder = _root(base_settings) / "crm-drop"
    created = await _create(
        client,
        brand.headers,
        segment_id=segment.id,
        fields=["email", "tier"],
        format="csv",
        gzip=True,
        mode="delta",
        every="hourly",
        destination=f"file://{folder}/sub/../",
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["destination"] == folder.as_uri()  # normalised
    assert body["fields"] == ["member_id", "email", "tier"]
    assert (body["every"], body["mode"], body["enabled"], body["last_version"]) == (
        "hourly",
        "delta",
        True,
        None,
    )
    url = f"{_schedules_url()}/{body['id']}"
    assert (await client.get(url, headers=brand.headers)).json() == body
    listed = await client.get(_schedules_url(), headers=brand.headers)
    assert [s["id"] for s in listed.json()["items"]] == [body["id"]]

    changed = await client.patch(
        url,
        json={"every": "daily", "format": "parquet", "mode": "full", "lawful_basis": "contract"},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("every", "format", "mode", "lawful_basis")} == {
        "every": "daily",
        "format": "parquet",
        "mode": "full",
        "lawful_basis": "contract",
    }
    # A delta cannot carry a lawful basis, whichever of the two changes.
    refused = await client.patch(url, json={"mode": "delta"}, headers=brand.headers)
    assert (refused.status_code, refused.json()["error"]) == (422, "LawfulBasisNotForDelta")
    cleared = await client.patch(
        url, json={"mode": "delta", "lawful_basis": None}, headers=brand.headers
    )
    assert cleared.status_code == 200
    assert cleared.json()["lawful_basis"] is None

    assert (await client.delete(url, headers=brand.headers)).status_code == 204
    missing = await client.get(url, headers=brand.headers)
    assert (missing.status_code, missing.json()["error"]) == (404, "ExportScheduleNotFound")


async def test_bad_schedules_are_refused_and_none_is_made(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
) -> None:
    await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    root = _root(base_settings)
    marketer = bearer(await key_with(session, brand, Scope.MARKETING_WRITE))
    good = {"segment_id": segment.id, "every": "daily", "destination": f"file://{root}/crm"}
    cases: list[tuple[dict[str, str], dict[str, Any], int, str, str | None]] = [
        (brand.headers, {**good, "destination": "file:///etc"}, 422, "DestinationNotAllowed",
         "destination"),
        (brand.headers, {**good, "destination": f"file://{root}/../../etc"}, 422,
         "DestinationNotAllowed", "destination"),
        (brand.headers, {**good, "destination": "file://elsewhere/tmp"}, 422,
         "DestinationNotAllowed", "destination"),
        (brand.headers, {**good, "destination": "crm/exports"}, 422, "DestinationNotAllowed",
         "destination"),
        (brand.headers, {**good, "destination": "https://example.com/drop"}, 422,
         "DestinationNotAllowed", "destination"),
        (brand.headers, {**good, "destination": "s3://Not_A_Bucket/x"}, 422,
         "DestinationNotAllowed", "destination"),
        (brand.headers, {**good, "destination": f"s3://{BUCKET}/x?versionId=1"}, 422,
         "DestinationNotAllowed", "destination"),
        (brand.headers, {**good, "segment_id": uuid.uuid4()}, 404, "SegmentNotFound", None),
        (brand.headers, {**good, "fields": ["nope"]}, 422, "UnknownField", "fields[0]"),
        (marketer, {**good, "fields": ["email"]}, 403, "FieldNotReadable", "fields[0]"),
        (brand.headers, {**good, "mode": "delta", "lawful_basis": "contract"}, 422,
         "LawfulBasisNotForDelta", "lawful_basis"),
        (brand.headers, {**good, "every": "weekly"}, 422, "ValidationError", None),
        (brand.headers, {**good, "every": "manual"}, 422, "ValidationError", None),
    ]  # fmt: skip
    for headers, body, status, code, path in cases:
        response = await _create(client, headers, **body)
        assert (response.status_code, response.json().get("error")) == (status, code), (
            body,
            response.text,
        )
        if path is not None:
            assert response.json()["detail"]["path"] == path, body
    assert await session.scalar(select(func.count()).select_from(ExportSchedule)) == 0
    assert (await _create(client, marketer, **good)).status_code == 201


# --- Running into a folder --------------------------------------------------------------------


async def test_due_schedules_write_files_to_their_folder_and_deltas_follow_the_versions(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, base_settings: Settings
) -> None:
    world = await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    m = world.members
    root = _root(base_settings)
    delta_folder, full_folder = root / f"delta-{brand.id}", root / f"full-{brand.id}"
    delta = await _create(
        client, brand.headers, segment_id=segment.id, fields=["email"], gzip=True,
        mode="delta", every="hourly", destination=delta_folder.as_uri(),
    )  # fmt: skip
    full = await _create(
        client, brand.headers, segment_id=segment.id, fields=["tier"], format="ndjson",
        every="daily", destination=full_folder.as_uri(),
    )  # fmt: skip
    assert delta.status_code == full.status_code == 201
    delta_id = uuid.UUID(delta.json()["id"])

    now = utcnow()
    ran = await service.run_due_schedules(session, base_settings, now)
    assert sorted(e.format.value for e in ran) == ["csv", "ndjson"]
    assert {e.status.value for e in ran} == {"completed"}
    first_delta = next(e for e in ran if e.schedule_id == delta_id)
    files = sorted(delta_folder.iterdir())
    assert [f.name for f in files] == [
        f"{segment.id}-v{first_delta.version}-delta-{first_delta.id}.csv.gz"
    ]
    # The first delta: everyone in the segment, as entered.
    _, rows = read_rows(files[0].read_bytes(), "csv", True)
    assert sorted((r["member_id"], r["change"]) for r in rows) == sorted(
        (str(m[n]), "entered") for n in ("ana", "bo", "ed")
    )
    assert len(list(full_folder.iterdir())) == 1
    schedule = await session.get(ExportSchedule, delta_id)
    assert schedule is not None
    assert schedule.last_version == first_delta.version
    assert schedule.next_run_at > now
    # Nothing is due again before the hour.
    assert (
        await service.run_due_schedules(session, base_settings, now + timedelta(minutes=30)) == []
    )

    known = await views(session, brand.id)
    known[m["cy"]].consents = ["email_marketing"]  # enters
    known[m["ana"]].order_count = 0  # exits
    await session.commit()
    later = now + timedelta(hours=1, seconds=1)
    second = await service.run_due_schedules(session, base_settings, later)
    assert [e.schedule_id for e in second] == [delta_id]  # the daily one is not due
    assert second[0].since_version == first_delta.version
    path = delta_folder / f"{segment.id}-v{second[0].version}-delta-{second[0].id}.csv.gz"
    _, rows = read_rows(path.read_bytes(), "csv", True)
    assert sorted((r["member_id"], r["change"], r["email"]) for r in rows) == sorted(
        [(str(m["cy"]), "entered", "cy@example.com"), (str(m["ana"]), "exited", "ana@example.com")]
    )
    # The exports are listed like on-demand ones, with where they went.
    shown = await client.get(f"/marketing/v1/exports/{second[0].id}", headers=brand.headers)
    assert shown.json()["schedule_id"] == str(delta_id)
    assert shown.json()["location"] == path.as_uri()
    # A disabled schedule does not run.
    await client.patch(
        f"{_schedules_url()}/{delta_id}", json={"enabled": False}, headers=brand.headers
    )
    third = await service.run_due_schedules(session, base_settings, later + timedelta(days=2))
    assert [e.schedule_id for e in third] == [uuid.UUID(full.json()["id"])]
    assert len(list(delta_folder.iterdir())) == 2


# --- S3 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, aws_test_credentials: None) -> Any:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield client
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    for item in listed:
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def s3_settings(base_settings: Settings, s3_endpoint: str) -> Settings:
    return base_settings.model_copy(
        update={
            "s3_endpoint_url": s3_endpoint,
            "exports_url": f"s3://{BUCKET}/on-demand",
            "export_s3_destinations": [f"s3://{BUCKET}/crm/{{brand_id}}"],
        }
    )


@pytest.fixture
async def s3_client(
    s3_settings: Settings, database: Database, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = app_for(SERVICES, s3_settings, make_runtime(s3_settings, database, redis))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as client:
        yield client


async def test_schedules_and_exports_write_to_an_s3_bucket(
    s3_client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    s3_settings: Settings,
    s3: Any,
) -> None:
    world = await small_brand(session, brand.id)
    segment = await add_segment(session, brand.id)
    await session.commit()
    # Only under the brand's own prefix of the allowed location.
    other = uuid.uuid4()
    for elsewhere in (
        f"s3://{BUCKET}/crm/acme",
        f"s3://{BUCKET}/crm/{other}/acme",
        f"s3://{BUCKET}/crm/{brand.id}-acme",
        f"s3://{BUCKET}/crm/{brand.id}/../{other}",
        f"s3://{BUCKET}/on-demand/{brand.id}",
        f"s3://another-bucket/crm/{brand.id}",
    ):
        refused = await _create(
            s3_client, brand.headers, segment_id=segment.id, every="daily", destination=elsewhere
        )
        assert (refused.status_code, refused.json()["error"]) == (422, "DestinationNotAllowed")
        assert refused.json()["detail"]["message"] == (
            f"S3 destinations must be at or under s3://{BUCKET}/crm/{brand.id}."
        )
    assert await session.scalar(select(func.count()).select_from(ExportSchedule)) == 0
    created = await _create(
        s3_client, brand.headers, segment_id=segment.id, fields=["email"], format="parquet",
        every="daily", destination=f"s3://{BUCKET}/crm/{brand.id}/acme/",
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["destination"] == f"s3://{BUCKET}/crm/{brand.id}/acme"
    ran = await service.run_due_schedules(session, s3_settings)
    assert [e.status.value for e in ran] == ["completed"], [e.error for e in ran]
    key = f"crm/{brand.id}/acme/{segment.id}-v1-full-{ran[0].id}.parquet"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == [key]
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert ran[0].bytes == len(body)
    _, rows = read_rows(body, "parquet", False)
    m = world.members
    assert sorted(r["member_id"] for r in rows) == sorted(str(m[n]) for n in ("ana", "bo", "ed"))

    # On demand, into the configured bucket, downloaded through the link (streamed).
    queued = await s3_client.post(
        "/marketing/v1/exports",
        json={"segment_id": str(segment.id), "fields": ["email"], "gzip": True},
        headers=brand.headers,
    )
    export_id = uuid.UUID(queued.json()["id"])
    finished = await service.run_export(session, export_id, s3_settings)
    assert finished is not None
    assert finished.status.value == "completed", finished.error
    await session.commit()
    assert finished.location == (
        f"s3://{BUCKET}/on-demand/{brand.id}/{segment.id}-v2-full-{export_id}.csv.gz"
    )
    shown = (
        await s3_client.get(f"/marketing/v1/exports/{export_id}", headers=brand.headers)
    ).json()
    response = await s3_client.get(shown["download_url"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    _, rows = read_rows(response.content, "csv", True)
    known = await views(session, brand.id)
    assert sorted((r["member_id"], r["email"]) for r in rows) == sorted(
        (str(m[n]), known[m[n]].email) for n in ("ana", "bo", "ed")
    )


def test_s3_destinations_default_to_the_exports_location_in_s3_and_else_none(
    base_settings: Settings,
) -> None:
    brand_id = uuid.uuid4()
    alone = base_settings.model_copy(update={"exports_url": None, "export_s3_destinations": []})
    with pytest.raises(DestinationNotAllowed) as nowhere:
        service.check_destination(alone, f"s3://{BUCKET}/crm", brand_id)
    assert "no S3 bucket" in nowhere.value.detail["message"]
    in_s3 = alone.model_copy(update={"exports_url": f"s3://{BUCKET}/exports/"})
    assert service.check_destination(in_s3, f"s3://{BUCKET}/exports/crm/", brand_id) == (
        f"s3://{BUCKET}/exports/crm"
    )
    with pytest.raises(DestinationNotAllowed):
        service.check_destination(in_s3, f"s3://{BUCKET}/exportsx", brand_id)
    several = alone.model_copy(
        update={"export_s3_destinations": ["s3://crm-drop", f"s3://{BUCKET}/b/{{brand_id}}/"]}
    )
    assert service.check_destination(several, "s3://crm-drop/x", brand_id) == "s3://crm-drop/x"
    assert service.check_destination(several, f"s3://{BUCKET}/b/{brand_id}", brand_id) == (
        f"s3://{BUCKET}/b/{brand_id}"
    )
    with pytest.raises(DestinationNotAllowed):
        service.check_destination(several, f"s3://{BUCKET}/b/{uuid.uuid4()}", brand_id)


@pytest.mark.parametrize(
    "location", ["crm-drop", "https://crm-drop/x", "s3://", "s3://crm-drop/x?versionId=1"]
)
def test_an_s3_destination_setting_that_is_not_an_s3_location_is_refused(location: str) -> None:
    with pytest.raises(ValidationError, match="s3://bucket"):
        Settings(export_s3_destinations=[location])
