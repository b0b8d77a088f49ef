"""Privacy: a member's export holds everything; erasure removes personal data once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.db import service_metadata
from services.kernel.module import ServiceModule
from services.kernel.runtime import Runtime
from services.kernel.settings import Settings
from services.members.endpoints import privacy_services
from services.members.models import ConsentChange
from services.registry import SERVICES
from tests.conftest import BrandFixture, MemberFixture, app_for
from tests.members.conftest import outbox_events

MEMBERS = "/members/v1/members"


async def grant(client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture) -> None:
    for purpose, granted in [("email_marketing", True), ("sms_marketing", False)]:
        response = await client.put(
            f"{MEMBERS}/{member.id}/consents/{purpose}",
            json={"granted": granted, "source": "signup form"},
            headers=brand.headers,
        )
        assert response.status_code == 200


async def test_export_holds_profile_consents_and_history(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    await grant(client, brand, member)
    await client.put(
        f"{MEMBERS}/{member.id}/consents/email_marketing",
        json={"granted": False, "source": "preferences"},
        headers=brand.headers,
    )

    staff = await client.get(f"{MEMBERS}/{member.id}/export", headers=brand.headers)
    own = await client.get("/members/v1/me/export", headers=member.headers)

    assert staff.status_code == own.status_code == 200
    export = staff.json()
    profile = (await client.get(f"{MEMBERS}/{member.id}", headers=brand.headers)).json()
    assert export["member_id"] == str(member.id)
    assert export["members"]["profile"] == profile
    assert [(c["purpose"], c["granted"], c["source"]) for c in export["members"]["consents"]] == [
        ("email_marketing", False, "preferences"),
        ("sms_marketing", False, "signup form"),
    ]
    assert [
        (c["purpose"], c["granted"], c["source"]) for c in export["members"]["consent_history"]
    ] == [
        ("email_marketing", True, "signup form"),
        ("sms_marketing", False, "signup form"),
        ("email_marketing", False, "preferences"),
    ]
    # The other services have not heard of the member yet: each holds nothing.
    assert export["services"] == {
        name: {} for name in ("rewards", "community", "recommender", "marketing", "webhooks")
    }
    assert {k: v for k, v in own.json().items() if k != "exported_at"} == {
        k: v for k, v in export.items() if k != "exported_at"
    }


async def test_export_of_another_brands_member_is_404(
    client: httpx.AsyncClient, member: MemberFixture, other_brand: BrandFixture
) -> None:
    response = await client.get(f"{MEMBERS}/{member.id}/export", headers=other_brand.headers)
    assert response.status_code == 404


# A second service in the same process that keeps data on members: the export gathers its section.
_loyalty = APIRouter(prefix="/loyalty/v1")


@_loyalty.get("/privacy/members/{member_id}")
async def _loyalty_privacy(member_id: uuid.UUID, request: Request) -> dict[str, Any]:
    return {"points": 120, "member": str(member_id), "auth": request.headers["authorization"][:7]}


LOYALTY = ServiceModule(
    name="loyalty",
    schema="loyalty",
    metadata=service_metadata("loyalty"),
    router=_loyalty,
    migrations=Path("."),
    privacy_export=True,
)


@pytest.fixture
async def with_loyalty(
    base_settings: Settings, runtime: Runtime
) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = app_for([*SERVICES, LOYALTY], base_settings, runtime)

    async def services() -> Sequence[ServiceModule]:
        return [LOYALTY]

    app.dependency_overrides[privacy_services] = services
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk.test") as c:
        yield c


async def test_export_gathers_each_other_service_with_the_callers_credentials(
    with_loyalty: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    response = await with_loyalty.get(f"{MEMBERS}/{member.id}/export", headers=brand.headers)

    assert response.status_code == 200
    assert response.json()["services"] == {
        "loyalty": {"points": 120, "member": str(member.id), "auth": "Bearer "}
    }


async def test_only_other_services_that_declare_privacy_support_are_asked() -> None:
    asked = await privacy_services()
    assert all(s.privacy_export and s.name != "members" for s in asked)
    assert [s.name for s in asked] == [
        s.name for s in SERVICES if s.privacy_export and s.name != "members"
    ]


# --- Erasure --------------------------------------------------------------------------------


async def test_erasure_removes_personal_data_keeps_the_id_and_is_idempotent(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture, session: AsyncSession
) -> None:
    await grant(client, brand, member)

    erased = await client.post(f"{MEMBERS}/{member.id}/erase", headers=brand.headers)
    again = await client.post(f"{MEMBERS}/{member.id}/erase", headers=brand.headers)

    assert erased.status_code == again.status_code == 200
    body = erased.json()
    assert again.json() == body
    assert body == {
        "id": str(member.id),
        "external_id": None,
        "email": None,
        "display_name": None,
        "birthday": None,
        "locale": None,
        "time_zone": None,
        "traits": {},
        "interests": [],
        "status": "erased",
        "created_at": body["created_at"],
        "updated_at": body["erased_at"],
        "erased_at": body["erased_at"],
    }
    consents = await client.get(f"{MEMBERS}/{member.id}/consents", headers=brand.headers)
    assert [(c["purpose"], c["granted"], c["source"]) for c in consents.json()["items"]] == [
        ("email_marketing", False, "erasure"),
        ("sms_marketing", False, "erasure"),
    ]
    history = await session.execute(
        select(ConsentChange.purpose, ConsentChange.granted, ConsentChange.source).order_by(
            ConsentChange.id
        )
    )
    assert [(str(p), g, s) for p, g, s in history] == [
        ("email_marketing", True, None),
        ("sms_marketing", False, None),
        ("email_marketing", False, "erasure"),
    ]
    events = await outbox_events(session)
    assert [t for t, _ in events][-1:] == ["member.erased"]
    assert [t for t, _ in events].count("member.erased") == 1
    assert events[-1][1] == {
        "member_id": str(member.id),
        "erased_at": body["erased_at"].replace("+00:00", "Z"),
    }


async def test_an_erased_member_cannot_be_changed_and_their_external_id_is_free(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture
) -> None:
    await client.post(f"{MEMBERS}/{member.id}/erase", headers=brand.headers)

    patch = await client.patch(
        f"{MEMBERS}/{member.id}", json={"display_name": "Back"}, headers=brand.headers
    )
    consent = await client.put(
        f"{MEMBERS}/{member.id}/consents/push",
        json={"granted": True, "source": "x"},
        headers=brand.headers,
    )
    reactivate = await client.post(f"{MEMBERS}/{member.id}/reactivate", headers=brand.headers)
    recreated = await client.post(MEMBERS, json={"external_id": "crm-1"}, headers=brand.headers)

    assert patch.status_code == consent.status_code == reactivate.status_code == 409
    assert patch.json()["error"] == "MemberErased"
    assert recreated.status_code == 201
    assert recreated.json()["id"] != str(member.id)


async def test_erasing_another_brands_member_is_404(
    client: httpx.AsyncClient,
    member: MemberFixture,
    other_brand: BrandFixture,
    brand: BrandFixture,
) -> None:
    response = await client.post(f"{MEMBERS}/{member.id}/erase", headers=other_brand.headers)
    assert response.status_code == 404
    assert (await client.get(f"{MEMBERS}/{member.id}", headers=brand.headers)).json()[
        "status"
    ] == "active"
