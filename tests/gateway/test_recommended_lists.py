"""The lists a query asks for reach the recommender in one call, each still its own exposure;
a surface asked twice (two aliases) goes in a second call, since the recommender takes each
surface once a call. A member who signed up a moment ago, whom no service but members has heard
of yet, gets a whole home screen."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import BrandFixture
from tests.gateway.conftest import GraphQL, MakeGatewayMember, upstream_calls
from tests.gateway.test_home_screen import HOME
from tests.recommender.serving_fixtures import add_item, add_list

NIL = uuid.UUID(int=0)


async def _perks(client: httpx.AsyncClient, brand: BrandFixture, names: list[str]) -> list[str]:
    ids = []
    for name in names:
        body = {"name": name, "category": "gifts", "kind": "free_product", "cost_points": 10}
        response = await client.post("/rewards/v1/perks", json=body, headers=brand.headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def test_a_querys_lists_are_one_call_and_a_surface_asked_twice_a_second(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
) -> None:
    member = await make_gateway_member()
    perk_ids = await _perks(client, brand, ["Tote", "Lipstick", "Mug"])
    items = [f"perk:{perk_id}" for perk_id in perk_ids]
    for item_id in items:
        await add_item(session, brand.id, item_id)
    # The brand's lists for members without a tier: what this member (new to the
    # recommender) is served.
    await add_list(session, brand.id, NIL, "perks", items, reason="Popular")
    # An item no service holds (its id is not a UUID) is left out, not an error for the list.
    await add_item(session, brand.id, "prompt:not-an-id")
    await add_list(session, brand.id, NIL, "prompts", ["prompt:not-an-id"])

    one_call = """{ me {
        recommendedPerks(first: 2) { reason position exposureId item { name } }
        recommendedPrompts(first: 5) { exposureId }
    } }"""
    with upstream_calls("recommender") as calls:
        answer = await graphql(one_call, member=member)
    assert "errors" not in answer, answer
    me = answer["data"]["me"]
    assert [(r["item"]["name"], r["reason"], r["position"]) for r in me["recommendedPerks"]] == [
        ("Tote", "Popular #1", 1),
        ("Lipstick", "Popular #2", 2),
    ]
    assert me["recommendedPrompts"] == []
    path = f"/recommender/v1/members/{member.id}/recommendations/lists"
    assert calls == [f"GET {path} ['perks:2', 'prompts:5']"]

    twice = """{ me {
        top: recommendedPerks(first: 1) { exposureId item { name } }
        all: recommendedPerks(first: 3) { exposureId item { name } }
        recommendedPrompts(first: 5) { exposureId }
    } }"""
    with upstream_calls("recommender") as calls:
        answer = await graphql(twice, member=member)
    assert "errors" not in answer, answer
    me = answer["data"]["me"]
    assert [r["item"]["name"] for r in me["top"]] == ["Tote"]
    assert [r["item"]["name"] for r in me["all"]] == ["Tote", "Lipstick", "Mug"]
    # Each list is its own showing, logged apart.
    assert me["top"][0]["exposureId"] != me["all"][0]["exposureId"]
    assert sorted(calls) == [
        f"GET {path} ['perks:1', 'prompts:5']",
        f"GET {path} ['perks:3']",
    ]


async def test_a_list_out_of_range_is_refused_before_any_call(
    graphql: GraphQL, make_gateway_member: MakeGatewayMember
) -> None:
    member = await make_gateway_member()
    with upstream_calls("recommender") as calls:
        answer = await graphql(
            "{ me { recommendedPerks(first: 51) { exposureId } } }", member=member
        )
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["PAGINATION_LIMIT"]
    assert calls == []


async def test_the_home_screen_of_a_member_who_signed_up_a_moment_ago_answers_whole(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
) -> None:
    # No service but members has heard of the member yet: their events are still on the way.
    program = {"currency": "EUR", "points_per_unit": 1}
    assert (await client.put("/rewards/v1/program", json=program, headers=brand.headers)).is_success
    member = await make_gateway_member(display_name="Newt")
    perk_ids = await _perks(client, brand, ["Tote"])
    await add_item(session, brand.id, f"perk:{perk_ids[0]}")
    await add_list(session, brand.id, NIL, "perks", [f"perk:{perk_ids[0]}"], reason="Popular")

    # The perks alone first: nothing else in the query has opened their rewards account.
    perks = await graphql("{ me { recommendedPerks { item { name } } } }", member=member)
    assert perks == {"data": {"me": {"recommendedPerks": [{"item": {"name": "Tote"}}]}}}
    answer = await graphql(HOME, {"n": 10}, member=member)

    assert "errors" not in answer, answer["errors"]
    me = answer["data"]["me"]
    assert me["displayName"] == "Newt"
    assert me["points"] == {"available": 0, "pending": 0, "expiringSoon": {"points": 0}}
    assert me["tierStatus"]["tier"] is None
    assert [r["item"]["name"] for r in me["recommendedPerks"]] == ["Tote"]
    assert me["recommendedPrompts"] == me["forYou"] == []
