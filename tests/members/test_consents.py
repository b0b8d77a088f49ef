"""Consents: one current choice per purpose, a history of changes, an event per change."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.members.models import ConsentChange
from tests.conftest import BrandFixture, MemberFixture
from tests.members.conftest import outbox_events


def url(member: MemberFixture, purpose: str = "email_marketing") -> str:
    return f"/members/v1/members/{member.id}/consents/{purpose}"


async def history(session: AsyncSession) -> list[tuple[str, bool, str | None]]:
    rows = await session.execute(
        select(ConsentChange.purpose, ConsentChange.granted, ConsentChange.source).order_by(
            ConsentChange.id
        )
    )
    return [(str(p), g, s) for p, g, s in rows]


async def test_granting_then_withdrawing_records_two_changes_and_two_events(
    client: httpx.AsyncClient, brand: BrandFixture, member: MemberFixture, session: AsyncSession
) -> None:
    granted = await client.put(
        url(member), json={"granted": True, "source": "checkout"}, headers=brand.headers
    )
    repeated = await client.put(
        url(member), json={"granted": True, "source": "crm"}, headers=brand.headers
    )
    withdrawn = await client.put(
        url(member), json={"granted": False, "source": "unsubscribe-link"}, headers=brand.headers
    )

    assert granted.status_code == repeated.status_code == withdrawn.status_code == 200
    assert granted.json() == {
        "purpose": "email_marketing",
        "granted": True,
        "source": "checkout",
        "changed_at": granted.json()["changed_at"],
    }
    assert repeated.json() == granted.json()  # the same choice again changes nothing
    assert (withdrawn.json()["granted"], withdrawn.json()["source"]) == (False, "unsubscribe-link")
    assert await history(session) == [
        ("email_marketing", True, "checkout"),
        ("email_marketing", False, "unsubscribe-link"),
    ]
    events = await outbox_events(session)
    assert [t for t, _ in events] == [
        "member.created",
        "member.consent_changed",
        "member.consent_changed",
    ]
    assert events[1][1] == {
        "member_id": str(member.id),
        "external_id": "crm-1",
        "purpose": "email_marketing",
        "granted": True,
        "source": "checkout",
        "changed_at": granted.json()["changed_at"].replace("+00:00", "Z"),
    }
    listed = await client.get(f"/members/v1/members/{member.id}/consents", headers=brand.headers)
    assert listed.json() == {"items": [withdrawn.json()]}


async def test_a_member_sets_their_own_consent(
    client: httpx.AsyncClient, member: MemberFixture, session: AsyncSession
) -> None:
    response = await client.put(
        "/members/v1/me/consents/push", json={"granted": True}, headers=member.headers
    )
    mine = await client.get("/members/v1/me/consents", headers=member.headers)

    assert response.status_code == 200
    assert (response.json()["purpose"], response.json()["source"]) == ("push", "member")
    assert mine.json() == {"items": [response.json()]}
    assert await history(session) == [("push", True, "member")]


@pytest.mark.parametrize(
    ("purpose", "body"),
    [
        ("carrier_pigeon", {"granted": True, "source": "x"}),
        ("push", {"granted": "yes", "source": "x"}),
        ("push", {"granted": 1, "source": "x"}),
        ("push", {"granted": True}),
        ("push", {"granted": True, "source": ""}),
        ("push", {"granted": True, "source": "x", "ip": "1.2.3.4"}),
    ],
)
async def test_bad_consent_requests_are_422_and_record_nothing(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    member: MemberFixture,
    session: AsyncSession,
    purpose: str,
    body: dict[str, object],
) -> None:
    response = await client.put(url(member, purpose), json=body, headers=brand.headers)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
    assert await history(session) == []


async def test_consent_for_another_brands_member_is_404(
    client: httpx.AsyncClient,
    member: MemberFixture,
    other_brand: BrandFixture,
    session: AsyncSession,
) -> None:
    response = await client.put(
        url(member), json={"granted": True, "source": "x"}, headers=other_brand.headers
    )
    assert response.status_code == 404
    assert await history(session) == []
