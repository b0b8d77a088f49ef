"""The member's profile and consents over GraphQL: `me.consents`, `updateProfile` (omitted fields
stay, null clears) and `setConsent`; refusals are userErrors pointing at the input field, with
nothing written, and a missing input field is a validation error."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.members.models import OUTBOX, Consent, Member
from tests.gateway.conftest import GraphQL, MakeGatewayMember

PROFILE = "displayName email locale timeZone birthday interests"
UPDATE = f"""mutation($input: UpdateProfileInput!) {{
  updateProfile(input: $input) {{ me {{ {PROFILE} }} userErrors {{ field code message }} }}
}}"""
SET_CONSENT = """mutation($input: SetConsentInput!) {
  setConsent(input: $input) { consent { purpose granted source } userErrors { field code } }
}"""


async def written(session: AsyncSession) -> dict[str, object]:
    tables = {"outbox": OUTBOX.table, "consents": Consent.__table__}
    counts: dict[str, object] = {
        name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
        for name, table in tables.items()
    }
    counts["last_update"] = str(await session.scalar(select(func.max(Member.updated_at))))
    return counts


async def test_update_profile_changes_what_is_sent_and_clears_what_is_null(
    graphql: GraphQL, make_gateway_member: MakeGatewayMember
) -> None:
    member = await make_gateway_member(
        display_name="Ada", locale="en-GB", time_zone="Europe/London", interests=["skincare"]
    )
    answer = await graphql(
        UPDATE,
        {
            "input": {
                "displayName": "Ada L.",
                "locale": None,
                "birthday": "1990-12-10",
                "interests": ["fragrance", "makeup"],
            }
        },
        member=member,
    )
    assert answer == {
        "data": {
            "updateProfile": {
                "me": {
                    "displayName": "Ada L.",
                    "email": f"{member.external_id}@example.com",
                    "locale": None,
                    "timeZone": "Europe/London",
                    "birthday": "1990-12-10",
                    "interests": ["fragrance", "makeup"],
                },
                "userErrors": [],
            }
        }
    }
    again = await graphql(f"{{ me {{ {PROFILE} }} }}", member=member)
    assert again == {"data": {"me": answer["data"]["updateProfile"]["me"]}}


async def test_refused_profile_changes_point_at_the_field_and_write_nothing(
    graphql: GraphQL, session: AsyncSession, make_gateway_member: MakeGatewayMember
) -> None:
    member = await make_gateway_member(display_name="Ada", time_zone="Europe/London")
    before = await written(session)
    for given, field in [
        ({"timeZone": "Mars/Olympus"}, ["input", "timeZone"]),
        ({"interests": None}, ["input", "interests"]),
        ({"displayName": "Ada", "birthday": "1800-01-01"}, ["input", "birthday"]),
    ]:
        answer = await graphql(UPDATE, {"input": given}, member=member)
        payload = answer["data"]["updateProfile"]
        assert payload["me"] is None
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
            (field, "ValidationError")
        ], given
        assert payload["userErrors"][0]["message"]
        assert await written(session) == before
    unchanged = await graphql("{ me { displayName timeZone } }", member=member)
    assert unchanged == {"data": {"me": {"displayName": "Ada", "timeZone": "Europe/London"}}}


async def test_consents_are_set_and_listed_and_a_missing_field_is_a_validation_error(
    graphql: GraphQL, session: AsyncSession, make_gateway_member: MakeGatewayMember
) -> None:
    member = await make_gateway_member()
    assert await graphql("{ me { consents { purpose } } }", member=member) == {
        "data": {"me": {"consents": []}}
    }
    for granted in (True, False):
        answer = await graphql(
            SET_CONSENT,
            {"input": {"purpose": "EMAIL_MARKETING", "granted": granted}},
            member=member,
        )
        assert answer == {
            "data": {
                "setConsent": {
                    "consent": {
                        "purpose": "EMAIL_MARKETING",
                        "granted": granted,
                        "source": "member",
                    },
                    "userErrors": [],
                }
            }
        }
    pushed = await graphql(
        SET_CONSENT, {"input": {"purpose": "PUSH", "granted": True}}, member=member
    )
    assert pushed["data"]["setConsent"]["userErrors"] == []
    listed = await graphql("{ me { consents { purpose granted changedAt } } }", member=member)
    consents = listed["data"]["me"]["consents"]
    assert sorted((c["purpose"], c["granted"]) for c in consents) == [
        ("EMAIL_MARKETING", False),
        ("PUSH", True),
    ]
    assert all(c["changedAt"] for c in consents)

    before = await written(session)
    missing = await graphql(
        "mutation { setConsent(input: {purpose: SMS_MARKETING}) { userErrors { code } } }",
        member=member,
    )
    assert missing["data"] is None
    assert [e["extensions"]["code"] for e in missing["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
    assert await written(session) == before


async def test_each_profile_change_in_one_document_shows_what_it_wrote(
    graphql: GraphQL, make_gateway_member: MakeGatewayMember
) -> None:
    member = await make_gateway_member(display_name="Ada")
    answer = await graphql(
        """
        mutation {
          first: updateProfile(input: {displayName: "Ada L."}) { me { displayName } }
          second: updateProfile(input: {displayName: "Ada Lovelace"}) { me { displayName } }
        }
        """,
        member=member,
    )
    assert answer == {
        "data": {
            "first": {"me": {"displayName": "Ada L."}},
            "second": {"me": {"displayName": "Ada Lovelace"}},
        }
    }
