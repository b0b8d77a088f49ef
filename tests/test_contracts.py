"""The committed contracts match the code; `kinfolk schemas` is the one way to refresh them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import jsonschema

from services.contracts import stale_contracts, write_contracts
from services.members.module import MEMBERS
from tests.conftest import BrandFixture


def test_committed_contracts_match_the_code(contracts: dict[Path, str]) -> None:
    assert stale_contracts(expected=contracts) == [], "run `kinfolk schemas` and commit the result"


def test_every_members_event_and_route_is_in_the_contracts(contracts: dict[Path, str]) -> None:
    events = sorted(f"{e.event_type()}.v{e.event_version()}.json" for e in MEMBERS.events)
    assert {Path("schemas/events") / name for name in events} <= set(contracts)
    assert events == [
        "member.consent_changed.v1.json",
        "member.created.v1.json",
        "member.erased.v1.json",
        "member.updated.v1.json",
    ]
    openapi = json.loads(contracts[Path("schemas/openapi/members.json")])
    assert "/members/v1/members/import" in openapi["paths"]
    assert "/members/v1/internal/api-keys/verify" not in openapi["paths"]


def test_stale_files_are_found_and_rewritten(tmp_path: Path) -> None:
    expected = {
        Path("schemas/events/a.v1.json"): "{}\n",
        Path("schemas/openapi/x.json"): '{"openapi": "3.1.0"}\n',
    }
    assert stale_contracts(tmp_path, expected) == [
        "schemas/events/a.v1.json",
        "schemas/openapi/x.json",
    ]
    assert write_contracts(tmp_path, expected) == list(expected)
    assert stale_contracts(tmp_path, expected) == []
    assert write_contracts(tmp_path, expected) == []

    (tmp_path / "schemas/events/a.v1.json").write_text('{"changed": true}\n')
    (tmp_path / "schemas/events/retired.v1.json").write_text("{}\n")
    (tmp_path / "schemas/events/README.md").write_text("not generated\n")
    assert stale_contracts(tmp_path, expected) == [
        "schemas/events/a.v1.json",
        "schemas/events/retired.v1.json (no longer produced)",
    ]
    assert write_contracts(tmp_path, expected) == [
        Path("schemas/events/a.v1.json"),
        Path("schemas/events/retired.v1.json"),
    ]
    assert (tmp_path / "schemas/events/README.md").exists()


async def test_error_answers_match_the_documented_error_schema(
    client: httpx.AsyncClient, brand: BrandFixture, contracts: dict[Path, str]
) -> None:
    document = json.loads(contracts[Path("schemas/openapi/members.json")])
    error_schema = document["components"]["schemas"]["Error"]
    for operations in document["paths"].values():
        for operation in operations.values():
            for status in ("400", "401", "403", "404", "409", "413", "422"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}
    answers = [
        await client.post("/members/v1/members", json={"email": 5}, headers=brand.headers),
        await client.post(
            "/members/v1/members",
            content=b"{",
            headers={**brand.headers, "content-type": "application/json"},
        ),
        await client.get("/members/v1/members"),
        await client.get(f"/members/v1/members/{uuid.uuid4()}", headers=brand.headers),
    ]
    assert [a.status_code for a in answers] == [422, 400, 401, 404]
    for answer in answers:
        jsonschema.validate(answer.json(), error_schema)
