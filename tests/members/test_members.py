"""Staff manage members: create, read, list, update, suspend and reactivate."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.pagination import encode_cursor
from services.members.models import Member
from tests.conftest import BrandFixture, MemberFixture
from tests.members.conftest import MEMBER_BODY, outbox_events

URL = "/members/v1/members"


async def member_count(session: AsyncSession) -> int:
    return (await session.scalar(select(func.count()).select_from(Member))) or 0


async def test_create_member_returns_the_normalised_profile_and_writes_member_created(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    response = await client.post(URL, json=MEMBER_BODY, headers=brand.headers)

    assert response.status_code == 201
    body = response.json()
    member_id = uuid.UUID(body["id"])
    assert member_id.version == 7
    assert body == {
        "id": str(member_id),
        "external_id": "crm-1",
        "email": "ada.lovelace@example.com",
        "display_name": "Ada",
        "birthday": "1990-12-10",
        "locale": "en-GB",
        "time_zone": "Europe/London",
        "traits": {"skin_type": "dry", "vip": True, "orders": 3},
        "interests": ["skincare", "fragrance"],
        "status": "active",
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
        "erased_at": None,
    }
    assert await outbox_events(session) == [
        (
            "member.created",
            {
                "member_id": str(member_id),
                "external_id": "crm-1",
                "email": "ada.lovelace@example.com",
                "display_name": "Ada",
                "birthday": "1990-12-10",
                "locale": "en-GB",
                "time_zone": "Europe/London",
                "traits": {"skin_type": "dry", "vip": True, "orders": 3},
                "interests": ["skincare", "fragrance"],
                "status": "active",
            },
        )
    ]
    got = await client.get(f"{URL}/{member_id}", headers=brand.headers)
    assert got.status_code == 200
    assert got.json() == body


async def test_a_minimal_member_needs_only_an_external_id(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    response = await client.post(URL, json={"external_id": "  pos-9 "}, headers=brand.headers)

    assert response.status_code == 201
    body = response.json()
    assert body["external_id"] == "pos-9"
    assert (body["email"], body["traits"], body["interests"]) == (None, {}, [])


async def test_duplicate_external_id_is_409_and_writes_nothing(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture, session: AsyncSession
) -> None:
    before = await outbox_events(session)

    response = await client.post(
        URL, json={**MEMBER_BODY, "email": "other@example.com"}, headers=brand.headers
    )

    assert response.status_code == 409
    assert response.json() == {
        "error": "DuplicateExternalId",
        "detail": "A member with external_id 'crm-1' already exists.",
    }
    assert await member_count(session) == 1
    assert await outbox_events(session) == before


async def test_the_same_external_id_may_exist_in_another_brand(
    client: httpx.AsyncClient, member: MemberFixture, other_brand: BrandFixture
) -> None:
    response = await client.post(URL, json=MEMBER_BODY, headers=other_brand.headers)
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"email": "not-an-email"}, ["body", "email"]),
        ({"email": 42}, ["body", "email"]),
        ({"birthday": "2999-01-01"}, ["body", "birthday"]),
        ({"birthday": "1899-12-31"}, ["body", "birthday"]),
        ({"birthday": "1990-02-30"}, ["body", "birthday"]),
        ({"time_zone": "Mars/Olympus"}, ["body", "time_zone"]),
        ({"time_zone": "../../etc/passwd"}, ["body", "time_zone"]),
        ({"locale": "english please"}, ["body", "locale"]),
        ({"external_id": ""}, ["body", "external_id"]),
        ({"external_id": None}, ["body", "external_id"]),
        ({"display_name": 123}, ["body", "display_name"]),
        ({"traits": {"1bad": "x"}}, ["body", "traits"]),
        ({"traits": {"nested": {"a": 1}}}, ["body", "traits", "nested", "bool"]),
        ({"traits": {f"k{i}": i for i in range(101)}}, ["body", "traits"]),
        ({"traits": {"big": 2**63}}, ["body", "traits"]),
        ({"traits": {"big": -(2**70)}}, ["body", "traits"]),
        ({"interests": "skincare"}, ["body", "interests"]),
        ({"phone": "+33"}, ["body", "phone"]),
    ],
)
async def test_invalid_members_are_422_and_write_nothing(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    session: AsyncSession,
    change: dict[str, Any],
    location: list[str],
) -> None:
    response = await client.post(URL, json={**MEMBER_BODY, **change}, headers=brand.headers)

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "ValidationError"
    assert location in [item["loc"] for item in body["detail"]]
    assert await member_count(session) == 0
    assert await outbox_events(session) == []


async def test_integer_traits_up_to_64_bits_are_kept_exactly(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    traits = {"largest": 2**63 - 1, "smallest": -(2**63 - 1)}

    response = await client.post(
        URL, json={"external_id": "crm-9", "traits": traits}, headers=brand.headers
    )

    assert response.status_code == 201
    assert response.json()["traits"] == traits
    [(kind, event)] = await outbox_events(session)
    assert (kind, event["traits"]) == ("member.created", traits)


async def test_missing_external_id_is_422(client: httpx.AsyncClient, brand: BrandFixture) -> None:
    response = await client.post(URL, json={"email": "a@example.com"}, headers=brand.headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "external_id"]


async def test_malformed_json_is_400(
    client: httpx.AsyncClient, brand: BrandFixture, session: AsyncSession
) -> None:
    response = await client.post(
        URL,
        content=b'{"external_id": "x",',
        headers={**brand.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidJSON"
    assert await member_count(session) == 0


async def test_locale_and_interests_are_normalised(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    response = await client.post(
        URL,
        json={
            "external_id": "n-1",
            "locale": "zh_hant_tw",
            "interests": ["  Skin   Care ", "skin care", "", "MAKEUP"],
        },
        headers=brand.headers,
    )
    assert response.status_code == 201
    assert response.json()["locale"] == "zh-Hant-TW"
    assert response.json()["interests"] == ["skin care", "makeup"]


async def test_get_unknown_or_other_brands_member_is_404(
    client: httpx.AsyncClient, member: MemberFixture, other_brand: BrandFixture
) -> None:
    other = await client.get(f"{URL}/{member.id}", headers=other_brand.headers)
    unknown = await client.get(f"{URL}/{uuid.uuid4()}", headers=other_brand.headers)

    assert other.status_code == 404
    assert other.json() == {"error": "NotFound", "detail": "No member with this id in your brand."}
    assert unknown.json() == other.json()


async def test_get_with_a_malformed_id_is_422(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    response = await client.get(f"{URL}/not-a-uuid", headers=brand.headers)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"


# --- Listing --------------------------------------------------------------------------------


async def create_members(
    client: httpx.AsyncClient, brand: BrandFixture, count: int, **fields: Any
) -> list[str]:
    ids = []
    for n in range(count):
        response = await client.post(
            URL, json={"external_id": f"m-{n}", **fields}, headers=brand.headers
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def test_list_pages_through_every_member_in_creation_order(
    client: httpx.AsyncClient, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    ids = await create_members(client, brand, 5)
    await create_members(client, other_brand, 2)

    first = await client.get(URL, params={"limit": 2}, headers=brand.headers)
    second = await client.get(
        URL, params={"limit": 2, "after": first.json()["next"]}, headers=brand.headers
    )
    third = await client.get(
        URL, params={"limit": 2, "after": second.json()["next"]}, headers=brand.headers
    )

    assert [m["id"] for m in first.json()["items"]] == ids[0:2]
    assert [m["id"] for m in second.json()["items"]] == ids[2:4]
    assert [m["id"] for m in third.json()["items"]] == ids[4:5]
    assert third.json()["next"] is None
    everything = await client.get(URL, headers=brand.headers)
    assert [m["id"] for m in everything.json()["items"]] == ids
    assert everything.json()["next"] is None


async def test_list_pages_backwards_from_any_page_with_before(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    ids = await create_members(client, brand, 5)
    last_page = await client.get(URL, params={"limit": 3}, headers=brand.headers)
    # The page before the fourth member: the three before it, in the list's order.
    tail = await client.get(
        URL, params={"limit": 2, "after": last_page.json()["next"]}, headers=brand.headers
    )
    assert [m["id"] for m in tail.json()["items"]] == ids[3:5]
    fourth = tail.json()["items"][0]["id"]
    before_fourth = encode_cursor(uuid.UUID(fourth))
    back = await client.get(
        URL, params={"limit": 2, "before": before_fourth}, headers=brand.headers
    )
    assert back.status_code == 200
    assert [m["id"] for m in back.json()["items"]] == ids[1:3]
    assert back.json()["next"] == encode_cursor(uuid.UUID(ids[2]))
    further = await client.get(
        URL, params={"limit": 2, "before": back.json()["previous"]}, headers=brand.headers
    )
    assert [m["id"] for m in further.json()["items"]] == ids[0:1]
    assert further.json()["previous"] is None
    end = await client.get(URL, params={"limit": 2, "from_end": "true"}, headers=brand.headers)
    assert [m["id"] for m in end.json()["items"]] == ids[3:5]
    assert (end.json()["next"], end.json()["previous"]) == (None, encode_cursor(uuid.UUID(ids[3])))
    both = await client.get(
        URL, params={"after": before_fourth, "before": before_fourth}, headers=brand.headers
    )
    assert (both.status_code, both.json()["error"]) == (400, "InvalidCursor")


async def test_list_filters_by_external_id_status_and_email(
    client: httpx.AsyncClient, brand: BrandFixture
) -> None:
    ids = await create_members(client, brand, 3)
    await client.patch(f"{URL}/{ids[1]}", json={"email": "b@example.com"}, headers=brand.headers)
    await client.post(f"{URL}/{ids[2]}/suspend", headers=brand.headers)

    async def listed(**params: str) -> list[str]:
        response = await client.get(URL, params=params, headers=brand.headers)
        assert response.status_code == 200
        return [m["id"] for m in response.json()["items"]]

    assert await listed(external_id="m-0") == [ids[0]]
    assert await listed(email="B@Example.com") == [ids[1]]
    assert await listed(status="suspended") == [ids[2]]
    assert await listed(status="active") == ids[:2]
    assert await listed(external_id="nobody") == []


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"limit": "0"}, 422, "ValidationError"),
        ({"limit": "101"}, 422, "ValidationError"),
        ({"limit": "many"}, 422, "ValidationError"),
        ({"status": "deleted"}, 422, "ValidationError"),
        ({"after": "not-a-cursor!"}, 400, "InvalidCursor"),
        ({"after": "AAAA"}, 400, "InvalidCursor"),
    ],
)
async def test_bad_list_parameters_are_4xx(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    params: dict[str, str],
    status: int,
    error: str,
) -> None:
    response = await client.get(URL, params=params, headers=brand.headers)
    assert response.status_code == status
    assert response.json()["error"] == error


# --- Updates --------------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_sent_and_merges_traits(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture, session: AsyncSession
) -> None:
    response = await client.patch(
        f"{URL}/{member.id}",
        json={
            "display_name": "Ada L.",
            "birthday": None,
            "traits": {"vip": None, "orders": 4, "tier_hint": "gold"},
            "interests": ["Makeup"],
        },
        headers=brand.headers,
    )

    assert response.status_code == 200
    body = response.json()
    assert body["display_name"] == "Ada L."
    assert body["birthday"] is None
    assert body["email"] == "ada.lovelace@example.com"
    assert body["traits"] == {"skin_type": "dry", "orders": 4, "tier_hint": "gold"}
    assert body["interests"] == ["makeup"]
    assert body["updated_at"] > body["created_at"]
    events = await outbox_events(session)
    assert [t for t, _ in events] == ["member.created", "member.updated"]
    assert events[1][1] == {
        "member_id": str(member.id),
        "external_id": "crm-1",
        "email": "ada.lovelace@example.com",
        "display_name": "Ada L.",
        "birthday": None,
        "locale": "en-GB",
        "time_zone": "Europe/London",
        "traits": {"skin_type": "dry", "orders": 4, "tier_hint": "gold"},
        "interests": ["makeup"],
        "status": "active",
        "changed": ["display_name", "birthday", "interests", "traits"],
    }


async def test_patch_that_changes_nothing_writes_no_event(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture, session: AsyncSession
) -> None:
    before = (await client.get(f"{URL}/{member.id}", headers=brand.headers)).json()

    response = await client.patch(
        f"{URL}/{member.id}",
        json={"display_name": "Ada", "traits": {"vip": True, "gone": None}},
        headers=brand.headers,
    )

    assert response.status_code == 200
    assert response.json() == before
    assert [t for t, _ in await outbox_events(session)] == ["member.created"]


@pytest.mark.parametrize(
    "body",
    [
        {"external_id": "new"},
        {"status": "erased"},
        {"traits": None},
        {"interests": None},
        {"time_zone": "Nowhere/Land"},
        {"email": "@"},
        {"traits": {"big": 2**64}},
    ],
)
async def test_bad_patches_are_422_and_change_nothing(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    member: MemberFixture,
    session: AsyncSession,
    body: dict[str, Any],
) -> None:
    before = (await client.get(f"{URL}/{member.id}", headers=brand.headers)).json()

    response = await client.patch(f"{URL}/{member.id}", json=body, headers=brand.headers)

    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
    assert (await client.get(f"{URL}/{member.id}", headers=brand.headers)).json() == before
    assert [t for t, _ in await outbox_events(session)] == ["member.created"]


async def test_patch_other_brands_member_is_404(
    client: httpx.AsyncClient, member: MemberFixture, other_brand: BrandFixture
) -> None:
    response = await client.patch(
        f"{URL}/{member.id}", json={"display_name": "Mallory"}, headers=other_brand.headers
    )
    assert response.status_code == 404


async def test_suspend_and_reactivate_emit_member_updated_once_each(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture, session: AsyncSession
) -> None:
    suspended = await client.post(f"{URL}/{member.id}/suspend", headers=brand.headers)
    again = await client.post(f"{URL}/{member.id}/suspend", headers=brand.headers)
    reactivated = await client.post(f"{URL}/{member.id}/reactivate", headers=brand.headers)

    assert suspended.status_code == again.status_code == reactivated.status_code == 200
    assert suspended.json()["status"] == again.json()["status"] == "suspended"
    assert reactivated.json()["status"] == "active"
    events = await outbox_events(session)
    assert [t for t, _ in events] == ["member.created", "member.updated", "member.updated"]
    assert (events[1][1]["status"], events[1][1]["changed"]) == ("suspended", ["status"])
    assert (events[2][1]["status"], events[2][1]["changed"]) == ("active", ["status"])
