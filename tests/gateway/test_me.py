"""`me` over GraphQL: the member's own profile, and no answer without a member token."""

from __future__ import annotations

from tests.conftest import BrandFixture
from tests.gateway.conftest import GraphQL, MakeGatewayMember


async def test_me_answers_the_members_own_profile(
    graphql: GraphQL, make_gateway_member: MakeGatewayMember
) -> None:
    member = await make_gateway_member(display_name="Ada", interests=["skincare"])
    answer = await graphql("{ me { displayName interests email } }", member=member)
    assert answer["data"] == {
        "me": {
            "displayName": "Ada",
            "interests": ["skincare"],
            "email": f"{member.external_id}@example.com",
        }
    }
    assert "errors" not in answer


async def test_me_without_a_token_is_unauthenticated(graphql: GraphQL) -> None:
    answer = await graphql("{ me { displayName } }")
    assert answer["data"] is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["UNAUTHENTICATED"]


async def test_a_staff_key_is_not_a_member(graphql: GraphQL, brand: BrandFixture) -> None:
    answer = await graphql("{ me { displayName } }", token=brand.key)
    assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "member token" in answer["errors"][0]["message"]
