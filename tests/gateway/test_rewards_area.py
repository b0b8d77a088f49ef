"""Rewards over GraphQL: the member's points, tier status, history and redemptions; the perks
catalog with its filters and pages; drops; redeeming with an idempotency key; and the refusals
that come back as userErrors with nothing written. The brand's program, tiers and perks are set
up through the rewards REST API as staff; the member reaches rewards through its projection."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.ids import encode_global_id
from services.kernel.auth import MemberTokenCodec
from services.kernel.clock import utcnow
from services.rewards.models import IDEMPOTENCY, OUTBOX, DropEntry, LedgerEntry, Redemption
from tests.conftest import BrandFixture, MemberFixture
from tests.gateway.conftest import GraphQL, MakeGatewayMember, upstream_calls
from tests.rewards.conftest import sync_members


def gid(type_name: str, raw: str | uuid.UUID) -> str:
    return str(encode_global_id(type_name, raw))


async def staff(
    client: httpx.AsyncClient, brand: BrandFixture, method: str, path: str, body: Any
) -> Any:
    response = await client.request(method, path, json=body, headers=brand.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


@dataclass(frozen=True)
class Loyalty:
    member: MemberFixture
    insider: dict[str, Any]
    gold: dict[str, Any]
    perks: dict[str, str]  # name -> perk id
    foreign_perk: str


@pytest.fixture
async def loyalty(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
) -> Loyalty:
    """A program in EUR at 1 pt/EUR, tiers Insider (entry) and Gold (500 EUR), a member at
    Insider with 300 points from a 300 EUR order, and four active perks and a withdrawn one."""
    await staff(
        client, brand, "PUT", "/rewards/v1/program", {"currency": "EUR", "points_per_unit": 1}
    )
    insider = await staff(
        client,
        brand,
        "POST",
        "/rewards/v1/tiers",
        {"name": "Insider", "rank": 0, "threshold_minor": 0, "benefits": ["Birthday gift"]},
    )
    gold = await staff(
        client,
        brand,
        "POST",
        "/rewards/v1/tiers",
        {
            "name": "Gold",
            "rank": 1,
            "threshold_minor": 50_000,
            "multiplier": 1.5,
            "priority_booking": True,
            "benefits": ["Free shipping"],
        },
    )
    member = await make_gateway_member()
    await sync_members(session)
    await staff(
        client,
        brand,
        "POST",
        "/rewards/v1/purchases",
        {
            "external_id": member.external_id,
            "order_id": "A-1",
            "amount_minor": 30_000,
            "currency": "EUR",
            "lines": [],
            "occurred_at": (utcnow() - timedelta(seconds=1)).isoformat(),
        },
    )
    perks: dict[str, str] = {}
    for name, category, cost, extra in [
        ("Tote", "gifts", 100, {}),
        ("Lipstick", "makeup", 250, {}),
        ("Gold tote", "gifts", 50, {"tier_ids": [gold["id"]]}),
        ("Spa day", "experiences", 1_000, {}),
        ("Old mug", "gifts", 10, {"active": False}),
    ]:
        body = {"name": name, "category": category, "kind": "free_product", "cost_points": cost}
        perks[name] = (await staff(client, brand, "POST", "/rewards/v1/perks", body | extra))["id"]
    foreign = await staff(
        client,
        other_brand,
        "POST",
        "/rewards/v1/perks",
        {"name": "Theirs", "category": "gifts", "kind": "free_product", "cost_points": 1},
    )
    return Loyalty(member, insider, gold, perks, foreign["id"])


async def written(session: AsyncSession) -> dict[str, int]:
    """Rows of everything a redemption or an entry writes: to assert that nothing moved."""
    tables = {
        "redemptions": Redemption.__table__,
        "ledger": LedgerEntry.__table__,
        "drop_entries": DropEntry.__table__,
        "outbox": OUTBOX.table,
        "idempotency": IDEMPOTENCY.table,
    }
    return {
        name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
        for name, table in tables.items()
    }


# --- The member's own rewards ---------------------------------------------------------------


async def test_points_tier_status_and_history_are_exactly_the_members(
    client: httpx.AsyncClient, graphql: GraphQL, brand: BrandFixture, loyalty: Loyalty
) -> None:
    member = loyalty.member
    await staff(
        client,
        brand,
        "POST",
        f"/rewards/v1/members/{member.id}/adjustments",
        {"points": 25, "reason": "Welcome bonus"},
    )
    answer = await graphql(
        """{ me {
          points { available pending lifetimeEarned expiringSoon {
            points windowDays policy next { points expiresAt } inactivityExpiresAt } }
          tierStatus { tier { id name rank thresholdMinor multiplier priorityBooking benefits }
            currency qualificationWindow windowStartsAt windowClosesAt spendMinor
            nextTier { tier { id name multiplier priorityBooking } remainingMinor by }
            keep { rule thresholdMinor spendMinor remainingMinor by reviewedAt } }
          ledger(first: 1) { edges { node { kind bucket points reason sourceType } }
            pageInfo { hasNextPage hasPreviousPage endCursor } }
        } }""",
        member=member,
    )
    year = utcnow().year
    window_start, window_end = f"{year}-01-01T00:00:00+00:00", f"{year + 1}-01-01T00:00:00+00:00"
    me = answer["data"]["me"]
    cursor = me["ledger"]["pageInfo"].pop("endCursor")
    assert answer == {
        "data": {
            "me": {
                "points": {
                    "available": 325,
                    "pending": 0,
                    "lifetimeEarned": 300,  # adjustments are not earnings
                    "expiringSoon": {
                        "points": 0,
                        "windowDays": 30,
                        "policy": "NONE",
                        "next": [],
                        "inactivityExpiresAt": None,
                    },
                },
                "tierStatus": {
                    "tier": {
                        "id": gid("Tier", loyalty.insider["id"]),
                        "name": "Insider",
                        "rank": 0,
                        "thresholdMinor": 0,
                        "multiplier": 1.0,
                        "priorityBooking": False,
                        "benefits": ["Birthday gift"],
                    },
                    "currency": "EUR",
                    "qualificationWindow": "CALENDAR_YEAR",
                    "windowStartsAt": window_start,
                    "windowClosesAt": window_end,
                    "spendMinor": 30_000,
                    "nextTier": {
                        "tier": {
                            "id": gid("Tier", loyalty.gold["id"]),
                            "name": "Gold",
                            "multiplier": 1.5,
                            "priorityBooking": True,
                        },
                        "remainingMinor": 20_000,
                        "by": window_end,
                    },
                    "keep": {
                        "rule": "END_OF_WINDOW",
                        "thresholdMinor": 0,
                        "spendMinor": 30_000,
                        "remainingMinor": 0,
                        "by": window_end,
                        "reviewedAt": window_end,
                    },
                },
                "ledger": {
                    "edges": [
                        {
                            "node": {
                                "kind": "ADJUST",
                                "bucket": "AVAILABLE",
                                "points": 25,
                                "reason": "Welcome bonus",
                                "sourceType": "staff",
                            }
                        }
                    ],
                    "pageInfo": {"hasNextPage": True, "hasPreviousPage": False},
                },
            }
        }
    }
    older = await graphql(
        """query($after: String) { me { ledger(first: 5, after: $after) {
          nodes { kind points reason } pageInfo { hasNextPage hasPreviousPage } } } }""",
        {"after": cursor},
        member=member,
    )
    assert older == {
        "data": {
            "me": {
                "ledger": {
                    "nodes": [
                        {
                            "kind": "EARN",
                            "points": 300,
                            "reason": "Order A-1: 300.00 EUR \u00d7 1 pt/EUR = 300 pts",
                        }
                    ],
                    "pageInfo": {"hasNextPage": False, "hasPreviousPage": True},
                }
            }
        }
    }


async def test_node_shows_the_members_tier_and_the_next_one_only(
    graphql: GraphQL, loyalty: Loyalty
) -> None:
    query = "query($id: ID!) { node(id: $id) { ... on Tier { name rank } } }"
    for tier, name, rank in [(loyalty.insider, "Insider", 0), (loyalty.gold, "Gold", 1)]:
        answer = await graphql(query, {"id": gid("Tier", tier["id"])}, member=loyalty.member)
        assert answer == {"data": {"node": {"name": name, "rank": rank}}}
    unknown = await graphql(query, {"id": gid("Tier", uuid.uuid4())}, member=loyalty.member)
    assert unknown == {"data": {"node": None}}


async def test_a_newcomer_sees_an_empty_account_and_a_stranger_a_typed_error_not_a_mask(
    graphql: GraphQL,
    make_gateway_member: MakeGatewayMember,
    loyalty: Loyalty,
    tokens: MemberTokenCodec,
) -> None:
    # Not projected into rewards yet: rewards asks the members service and shows an empty
    # account rather than none.
    newcomer = await make_gateway_member()
    answer = await graphql("{ me { points { available } } }", member=newcomer)
    assert answer == {"data": {"me": {"points": {"available": 0}}}}
    # A token naming someone the members service has never had: typed, not masked.
    ghost_id = uuid.uuid4()
    brand_id = loyalty.member.brand_id
    token = tokens.issue(brand_id, ghost_id, timedelta(hours=1))
    ghost = MemberFixture(ghost_id, brand_id, "ghost", token)
    answer = await graphql("{ me { points { available } } }", member=ghost)
    assert answer["data"] is None
    [error] = answer["errors"]
    assert error["path"] == ["me", "points"]
    assert error["extensions"] == {"code": "NOT_FOUND", "serviceCode": "MemberNotFound"}


# --- The catalog ----------------------------------------------------------------------------

PERKS = """query($first: Int, $after: String, $filter: PerkFilter) {
  perks(first: $first, after: $after, filter: $filter) {
    nodes { name category costPoints redeemable reason }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"""


async def test_the_catalog_filters_by_category_affordability_and_tier_in_full_pages(
    graphql: GraphQL, loyalty: Loyalty
) -> None:
    member = loyalty.member

    async def names(**filter: Any) -> list[str]:
        answer = await graphql(PERKS, {"first": 10, "filter": filter}, member=member)
        assert "errors" not in answer, answer
        return [perk["name"] for perk in answer["data"]["perks"]["nodes"]]

    everything = await graphql(PERKS, {"first": 10}, member=member)
    assert everything["data"]["perks"]["nodes"] == [
        {
            "name": "Tote",
            "category": "gifts",
            "costPoints": 100,
            "redeemable": True,
            "reason": None,
        },
        {
            "name": "Lipstick",
            "category": "makeup",
            "costPoints": 250,
            "redeemable": True,
            "reason": None,
        },
        {
            "name": "Gold tote",
            "category": "gifts",
            "costPoints": 50,
            "redeemable": False,
            "reason": "TierNotEligible",
        },
        {
            "name": "Spa day",
            "category": "experiences",
            "costPoints": 1_000,
            "redeemable": False,
            "reason": "InsufficientPoints",
        },
    ]
    assert await names(category="gifts") == ["Tote", "Gold tote"]
    assert await names(affordable=True) == ["Tote", "Lipstick", "Gold tote"]
    assert await names(affordable=False) == ["Spa day"]
    assert await names(tierId=gid("Tier", loyalty.insider["id"])) == [
        "Tote",
        "Lipstick",
        "Spa day",
    ]
    assert await names(tierId=gid("Tier", loyalty.gold["id"]), category="gifts") == [
        "Tote",
        "Gold tote",
    ]
    assert await names(redeemableOnly=True) == ["Tote", "Lipstick"]
    assert await names(redeemableOnly=True, category="gifts") == ["Tote"]

    first = await graphql(PERKS, {"first": 2}, member=member)
    page = first["data"]["perks"]
    assert [p["name"] for p in page["nodes"]] == ["Tote", "Lipstick"]
    assert (page["pageInfo"]["hasNextPage"], page["pageInfo"]["hasPreviousPage"]) == (True, False)
    rest = await graphql(PERKS, {"first": 2, "after": page["pageInfo"]["endCursor"]}, member=member)
    page = rest["data"]["perks"]
    assert [p["name"] for p in page["nodes"]] == ["Gold tote", "Spa day"]
    assert (page["pageInfo"]["hasNextPage"], page["pageInfo"]["hasPreviousPage"]) == (False, True)


async def test_the_ledger_walks_backwards_with_last_and_before(
    client: httpx.AsyncClient, graphql: GraphQL, brand: BrandFixture, loyalty: Loyalty
) -> None:
    member = loyalty.member
    for points in (10, 20, 30):
        await staff(
            client,
            brand,
            "POST",
            f"/rewards/v1/members/{member.id}/adjustments",
            {"points": points, "reason": f"Goodwill {points}"},
        )
    query = """query($last: Int, $before: String) { me { ledger(last: $last, before: $before) {
      edges { cursor node { points } } pageInfo { hasNextPage hasPreviousPage } } } }"""
    everything = await graphql(
        "{ me { ledger(first: 10) { edges { cursor node { points } } } } }", member=member
    )
    edges = everything["data"]["me"]["ledger"]["edges"]
    newest_first = [edge["node"]["points"] for edge in edges]
    # The oldest two (the end of a newest-first list), then the two before the oldest of them.
    end = await graphql(query, {"last": 2}, member=member)
    ledger = end["data"]["me"]["ledger"]
    assert [e["node"]["points"] for e in ledger["edges"]] == newest_first[-2:]
    assert ledger["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": len(edges) > 2}
    before = await graphql(
        query, {"last": 2, "before": ledger["edges"][0]["cursor"]}, member=member
    )
    earlier = before["data"]["me"]["ledger"]
    assert [e["node"]["points"] for e in earlier["edges"]] == newest_first[-4:-2]
    assert earlier["pageInfo"]["hasNextPage"] is True
    # Lists ordered by something else than their ids refuse to walk back, with a code.
    perks = await graphql("{ perks(last: 2) { nodes { id } } }", member=member)
    assert perks["errors"][0]["extensions"]["serviceCode"] == "InvalidCursor"
    both = await graphql("{ me { ledger(first: 2, last: 2) { nodes { points } } } }", member=member)
    assert both["errors"][0]["extensions"]["code"] == "PAGINATION_DIRECTION"


async def test_bad_catalog_arguments_are_typed_errors(graphql: GraphQL, loyalty: Loyalty) -> None:
    member = loyalty.member
    cases = [
        ({"first": 1000}, "PAGINATION_LIMIT"),
        ({}, "PAGINATION_REQUIRED"),
        ({"first": 5, "filter": {"tierId": "not-an-id"}}, "INVALID_ID"),
        ({"first": 5, "filter": {"tierId": gid("Perk", loyalty.perks["Tote"])}}, "INVALID_ID"),
        ({"first": 5, "after": "x" * 65}, "INVALID_CURSOR"),
    ]
    for variables, code in cases:
        answer = await graphql(PERKS, variables, member=member)
        assert answer["data"] is None, variables
        assert [e["extensions"]["code"] for e in answer["errors"]] == [code], variables


async def test_points_and_tier_status_asked_together_are_one_call_to_rewards(
    graphql: GraphQL, loyalty: Loyalty
) -> None:
    member = loyalty.member
    together = "{ me { points { available } tierStatus { tier { name } spendMinor } } }"
    with upstream_calls("rewards") as calls:
        both = await graphql(together, member=member)
    assert both["data"]["me"] == {
        "points": {"available": 300},
        "tierStatus": {"tier": {"name": "Insider"}, "spendMinor": 30_000},
    }
    assert calls == ["GET /rewards/v1/me/summary ['tier']"]

    # Each alone asks for only what it shows, and answers the same.
    with upstream_calls("rewards") as calls:
        points = await graphql("{ me { points { available } } }", member=member)
        tier = await graphql("{ me { tierStatus { tier { name } spendMinor } } }", member=member)
    assert points["data"]["me"] == {"points": both["data"]["me"]["points"]}
    assert tier["data"]["me"] == {"tierStatus": both["data"]["me"]["tierStatus"]}
    assert calls == ["GET /rewards/v1/me/summary []", "GET /rewards/v1/me/tier []"]


async def test_node_returns_a_perk_of_the_brand_and_nothing_of_another(
    graphql: GraphQL, loyalty: Loyalty
) -> None:
    query = """query($id: ID!) { node(id: $id) { id ... on Perk { name costPoints reason } } }"""
    tote = gid("Perk", loyalty.perks["Tote"])
    answer = await graphql(query, {"id": tote}, member=loyalty.member)
    assert answer == {
        "data": {"node": {"id": tote, "name": "Tote", "costPoints": 100, "reason": None}}
    }
    # Withdrawn from the catalog: still the member's to see (a redemption may name it).
    old = gid("Perk", loyalty.perks["Old mug"])
    answer = await graphql(query, {"id": old}, member=loyalty.member)
    assert answer["data"]["node"] == {
        "id": old,
        "name": "Old mug",
        "costPoints": 10,
        "reason": "PerkNotFound",
    }
    foreign = gid("Perk", loyalty.foreign_perk)
    assert await graphql(query, {"id": foreign}, member=loyalty.member) == {"data": {"node": None}}
    unknown = gid("Perk", uuid.uuid4())
    assert await graphql(query, {"id": unknown}, member=loyalty.member) == {"data": {"node": None}}


# --- Redeeming ------------------------------------------------------------------------------

REDEEM = """mutation($input: RedeemPerkInput!) {
  redeemPerk(input: $input) {
    redemption { id points status hasCode code perk { name redeemedByMe } }
    userErrors { field code message }
  }
}"""

AVAILABLE = "{ me { points { available } } }"


async def test_redeem_perk_spends_once_and_a_replay_returns_the_same_redemption(
    graphql: GraphQL, session: AsyncSession, loyalty: Loyalty
) -> None:
    member = loyalty.member
    tote = gid("Perk", loyalty.perks["Tote"])
    variables = {"input": {"perkId": tote, "idempotencyKey": "redeem-1"}}
    first = await graphql(REDEEM, variables, member=member)
    payload = first["data"]["redeemPerk"]
    assert payload["userErrors"] == []
    redemption = payload["redemption"]
    redemption_id = redemption.pop("id")
    assert redemption == {
        "points": 100,
        "status": "COMPLETED",
        "hasCode": False,
        "code": None,
        "perk": {"name": "Tote", "redeemedByMe": 1},
    }
    assert await graphql(AVAILABLE, member=member) == {
        "data": {"me": {"points": {"available": 200}}}
    }
    before = await written(session)

    replay = await graphql(REDEEM, variables, member=member)
    assert replay["data"]["redeemPerk"]["redemption"]["id"] == redemption_id
    assert replay["data"]["redeemPerk"]["userErrors"] == []
    assert await written(session) == before
    assert await graphql(AVAILABLE, member=member) == {
        "data": {"me": {"points": {"available": 200}}}
    }

    history = await graphql(
        """{ me {
          redemptions(first: 10) { nodes { id points status perk { name } } }
          ledger(first: 1) { nodes { kind points reason redemption { id } } }
        } }""",
        member=member,
    )
    assert history == {
        "data": {
            "me": {
                "redemptions": {
                    "nodes": [
                        {
                            "id": redemption_id,
                            "points": 100,
                            "status": "COMPLETED",
                            "perk": {"name": "Tote"},
                        }
                    ]
                },
                "ledger": {
                    "nodes": [
                        {
                            "kind": "REDEEM",
                            "points": -100,
                            "reason": "Redeemed: Tote",
                            "redemption": {"id": redemption_id},
                        }
                    ]
                },
            }
        }
    }
    node = await graphql(
        "query($id: ID!) { node(id: $id) { ... on Redemption { points perk { name } } } }",
        {"id": redemption_id},
        member=member,
    )
    assert node == {"data": {"node": {"points": 100, "perk": {"name": "Tote"}}}}

    cancel = """mutation($input: CancelRedemptionInput!) { cancelRedemption(input: $input) {
      redemption { id status } userErrors { field code } } }"""
    for _ in range(2):  # cancelling again changes nothing
        cancelled = await graphql(cancel, {"input": {"redemptionId": redemption_id}}, member=member)
        assert cancelled == {
            "data": {
                "cancelRedemption": {
                    "redemption": {"id": redemption_id, "status": "CANCELLED"},
                    "userErrors": [],
                }
            }
        }
        assert await graphql(AVAILABLE, member=member) == {
            "data": {"me": {"points": {"available": 300}}}
        }
    only_cancelled = await graphql(
        "{ me { a: redemptions(first: 5, status: CANCELLED) { nodes { id } } "
        "b: redemptions(first: 5, status: COMPLETED) { nodes { id } } } }",
        member=member,
    )
    assert only_cancelled == {
        "data": {"me": {"a": {"nodes": [{"id": redemption_id}]}, "b": {"nodes": []}}}
    }


async def test_refused_redemptions_are_user_errors_and_write_nothing(
    graphql: GraphQL, session: AsyncSession, loyalty: Loyalty
) -> None:
    member = loyalty.member
    before = await written(session)

    async def refused(perk_id: str) -> dict[str, Any]:
        variables = {"input": {"perkId": perk_id, "idempotencyKey": uuid.uuid4().hex}}
        answer = await graphql(REDEEM, variables, member=member)
        assert "errors" not in answer, answer
        payload: dict[str, Any] = answer["data"]["redeemPerk"]
        assert payload["redemption"] is None
        [error] = payload["userErrors"]
        assert await written(session) == before, perk_id
        return {"field": error["field"], "code": error["code"]}

    assert await refused("forged") == {"field": ["input", "perkId"], "code": "INVALID_ID"}
    assert await refused(gid("Tier", loyalty.gold["id"])) == {
        "field": ["input", "perkId"],
        "code": "INVALID_ID",
    }
    # Another brand's perk is as unknown as one that never existed.
    assert await refused(gid("Perk", loyalty.foreign_perk)) == {
        "field": ["input", "perkId"],
        "code": "PerkNotFound",
    }
    assert await refused(gid("Perk", uuid.uuid4())) == {
        "field": ["input", "perkId"],
        "code": "PerkNotFound",
    }
    assert await refused(gid("Perk", loyalty.perks["Spa day"])) == {
        "field": None,
        "code": "InsufficientPoints",
    }
    assert await refused(gid("Perk", loyalty.perks["Gold tote"])) == {
        "field": None,
        "code": "TierNotEligible",
    }
    message = await graphql(
        REDEEM,
        {"input": {"perkId": gid("Perk", loyalty.perks["Spa day"]), "idempotencyKey": "k"}},
        member=member,
    )
    assert message["data"]["redeemPerk"]["userErrors"][0]["message"] == (
        "This perk costs 1000 points; the member has 300 available."
    )

    # A missing input field is the document's fault: a validation error, before anything runs.
    missing = await graphql(
        "mutation($id: ID!) { redeemPerk(input: {perkId: $id}) { userErrors { code } } }",
        {"id": gid("Perk", loyalty.perks["Tote"])},
        member=member,
    )
    assert missing["data"] is None
    assert [e["extensions"]["code"] for e in missing["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
    assert "idempotencyKey" in missing["errors"][0]["message"]
    assert await written(session) == before
    assert await graphql(AVAILABLE, member=member) == {
        "data": {"me": {"points": {"available": 300}}}
    }


async def test_a_key_reused_for_another_perk_is_refused(
    graphql: GraphQL, session: AsyncSession, loyalty: Loyalty
) -> None:
    member = loyalty.member
    tote, lipstick = gid("Perk", loyalty.perks["Tote"]), gid("Perk", loyalty.perks["Lipstick"])
    ok = await graphql(REDEEM, {"input": {"perkId": tote, "idempotencyKey": "k-1"}}, member=member)
    assert ok["data"]["redeemPerk"]["userErrors"] == []
    before = await written(session)
    reused = await graphql(
        REDEEM, {"input": {"perkId": lipstick, "idempotencyKey": "k-1"}}, member=member
    )
    assert reused["data"]["redeemPerk"]["redemption"] is None
    assert [(e["field"], e["code"]) for e in reused["data"]["redeemPerk"]["userErrors"]] == [
        (None, "IdempotencyKeyReused")
    ]
    empty = await graphql(REDEEM, {"input": {"perkId": tote, "idempotencyKey": ""}}, member=member)
    assert [(e["field"], e["code"]) for e in empty["data"]["redeemPerk"]["userErrors"]] == [
        (["input", "idempotencyKey"], "ValidationError")
    ]
    assert await written(session) == before


# --- Drops ----------------------------------------------------------------------------------


async def test_drops_are_listed_with_the_members_entry_and_entering_twice_changes_nothing(
    client: httpx.AsyncClient,
    graphql: GraphQL,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    loyalty: Loyalty,
) -> None:
    member = loyalty.member
    window = {"opens_at": "2020-01-01T00:00:00Z", "closes_at": "2100-01-01T00:00:00Z"}
    scarce = await staff(
        client,
        brand,
        "POST",
        "/rewards/v1/perks",
        {"name": "Scarce", "category": "gifts", "kind": "free_product", "cost_points": 50},
    )
    drop = await staff(
        client,
        brand,
        "POST",
        "/rewards/v1/drops",
        {"perk_id": scarce["id"], "method": "queue", "units": 1} | window,
    )
    foreign_perk = loyalty.foreign_perk
    foreign = await staff(
        client,
        other_brand,
        "POST",
        "/rewards/v1/drops",
        {"perk_id": foreign_perk, "method": "draw", "units": 1} | window,
    )
    drop_gid = gid("Drop", drop["id"])
    listed = await graphql(
        """{ drops(first: 5) { nodes { id method units status earlyAccess closesAt
          myEntry { won } perk { name redeemable reason } } } }""",
        member=member,
    )
    assert listed == {
        "data": {
            "drops": {
                "nodes": [
                    {
                        "id": drop_gid,
                        "method": "QUEUE",
                        "units": 1,
                        "status": "SCHEDULED",
                        "earlyAccess": False,
                        "closesAt": "2100-01-01T00:00:00+00:00",
                        "myEntry": None,
                        "perk": {"name": "Scarce", "redeemable": False, "reason": "DropOnly"},
                    }
                ]
            }
        }
    }

    enter = """mutation($input: EnterDropInput!) { enterDrop(input: $input) {
      entry { enteredAt won position } drop { id myEntry { enteredAt } }
      userErrors { field code } } }"""
    entered = await graphql(enter, {"input": {"dropId": drop_gid}}, member=member)
    payload = entered["data"]["enterDrop"]
    assert payload["userErrors"] == []
    entered_at = payload["entry"]["enteredAt"]
    assert payload == {
        "entry": {"enteredAt": entered_at, "won": False, "position": None},
        "drop": {"id": drop_gid, "myEntry": {"enteredAt": entered_at}},
        "userErrors": [],
    }
    before = await written(session)
    again = await graphql(enter, {"input": {"dropId": drop_gid}}, member=member)
    assert again["data"]["enterDrop"] == payload
    assert await written(session) == before

    for drop_id, error in [
        ("forged", (["input", "dropId"], "INVALID_ID")),
        (gid("Drop", foreign["id"]), (["input", "dropId"], "DropNotFound")),
    ]:
        refused = await graphql(enter, {"input": {"dropId": drop_id}}, member=member)
        payload = refused["data"]["enterDrop"]
        assert (payload["entry"], payload["drop"]) == (None, None)
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [error]
        assert await written(session) == before

    node = "query($id: ID!) { node(id: $id) { ... on Drop { units myEntry { won } } } }"
    assert await graphql(node, {"id": drop_gid}, member=member) == {
        "data": {"node": {"units": 1, "myEntry": {"won": False}}}
    }
    assert await graphql(node, {"id": gid("Drop", foreign["id"])}, member=member) == {
        "data": {"node": None}
    }


async def test_reveal_shows_a_code_and_forged_or_foreign_redemptions_are_user_errors(
    client: httpx.AsyncClient,
    graphql: GraphQL,
    session: AsyncSession,
    brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
    loyalty: Loyalty,
) -> None:
    member = loyalty.member
    coupon = await staff(
        client,
        brand,
        "POST",
        "/rewards/v1/perks",
        {"name": "10% off", "category": "codes", "kind": "discount_code", "cost_points": 10},
    )
    await staff(
        client, brand, "POST", f"/rewards/v1/perks/{coupon['id']}/codes", {"codes": ["SAVE10"]}
    )
    made = await graphql(
        REDEEM,
        {"input": {"perkId": gid("Perk", coupon["id"]), "idempotencyKey": "c-1"}},
        member=member,
    )
    redemption = made["data"]["redeemPerk"]["redemption"]
    assert (redemption["hasCode"], redemption["code"]) == (True, "SAVE10")

    reveal = """mutation($input: RevealRedemptionCodeInput!) { revealRedemptionCode(input: $input) {
      redemption { id code } userErrors { field code } } }"""
    shown = await graphql(reveal, {"input": {"redemptionId": redemption["id"]}}, member=member)
    assert shown == {
        "data": {
            "revealRedemptionCode": {
                "redemption": {"id": redemption["id"], "code": "SAVE10"},
                "userErrors": [],
            }
        }
    }
    # The code was shown at once (the member redeemed it), so it may be in use: no cancelling.
    before = await written(session)
    cancel = """mutation($input: CancelRedemptionInput!) { cancelRedemption(input: $input) {
      redemption { id } userErrors { field code } } }"""
    refused = await graphql(cancel, {"input": {"redemptionId": redemption["id"]}}, member=member)
    assert refused == {
        "data": {
            "cancelRedemption": {
                "redemption": None,
                "userErrors": [{"field": None, "code": "NotCancellable"}],
            }
        }
    }
    other = await make_gateway_member()
    await sync_members(session)
    for token_owner, redemption_id, expected in [
        (member, "forged", {"field": ["input", "redemptionId"], "code": "INVALID_ID"}),
        (
            other,
            redemption["id"],
            {"field": ["input", "redemptionId"], "code": "RedemptionNotFound"},
        ),
    ]:
        answer = await graphql(
            reveal, {"input": {"redemptionId": redemption_id}}, member=token_owner
        )
        assert answer == {
            "data": {"revealRedemptionCode": {"redemption": None, "userErrors": [expected]}}
        }
        answer = await graphql(
            cancel, {"input": {"redemptionId": redemption_id}}, member=token_owner
        )
        assert answer == {
            "data": {"cancelRedemption": {"redemption": None, "userErrors": [expected]}}
        }
    assert await written(session) == before
    node = "query($id: ID!) { node(id: $id) { id } }"
    assert await graphql(node, {"id": redemption["id"]}, member=other) == {"data": {"node": None}}
