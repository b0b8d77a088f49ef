"""Reports: members flag posts, comments and members; one open report per reporter and target."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.moderation.models import Report
from tests.community.conftest import MakeMember
from tests.community.moderation_helpers import (
    block,
    count,
    error,
    moderation_events,
    report,
    write_comment,
    write_post,
)
from tests.conftest import BrandFixture, MemberFixture


async def test_a_member_reports_a_post_once_and_moderation_reported_is_emitted(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    post = await write_post(client, member, "Look at my new palette")
    filed = await report(client, other_member, "post", post["id"], text="  Selling stuff  ")
    assert filed.status_code == 201, filed.text
    body = filed.json()
    assert body == {
        "id": body["id"],
        "reporter_id": str(other_member.id),
        "target_kind": "post",
        "target_id": post["id"],
        "target_author_id": str(member.id),
        "group_id": None,
        "reason": "spam",
        "text": "Selling stuff",
        "status": "open",
        "decision_id": None,
        "created_at": body["created_at"],
        "resolved_at": None,
    }
    assert await moderation_events(session) == [
        (
            "moderation.reported",
            {
                "report_id": body["id"],
                "reporter_id": str(other_member.id),
                "target_kind": "post",
                "target_id": post["id"],
                "target_author_id": str(member.id),
                "group_id": None,
                "reason": "spam",
            },
        )
    ]
    # A second report of the same target while the first is open returns the first, unchanged.
    again = await report(client, other_member, "post", post["id"], reason="hate")
    assert again.status_code == 200
    assert again.json() == body
    assert len(await moderation_events(session)) == 1
    # Someone else may report it too.
    third = await make_member("cleo")
    assert (await report(client, third, "post", post["id"])).status_code == 201
    mine = await client.get("/community/v1/me/reports", headers=other_member.headers)
    assert mine.json() == {"items": [body], "next": None, "previous": None}


async def test_comments_and_members_can_be_reported(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post = await write_post(client, member, "Summer look")
    comment = await write_comment(client, other_member, post["id"], "Ugly, you should quit")
    on_comment = await report(client, member, "comment", comment["id"], reason="harassment")
    assert on_comment.status_code == 201
    assert on_comment.json()["target_author_id"] == str(other_member.id)
    on_member = await report(
        client, member, "member", str(other_member.id), reason="other", text="Follows me around"
    )
    assert on_member.status_code == 201
    assert (on_member.json()["target_author_id"], on_member.json()["text"]) == (
        str(other_member.id),
        "Follows me around",
    )
    assert [d["target_kind"] for _, d in await moderation_events(session)] == [
        "comment",
        "member",
    ]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, ["body", "target_kind"]),
        ({"target_kind": "post", "reason": "spam"}, ["body", "target_id"]),
        ({"target_kind": "post", "target_id": "TARGET", "reason": "rude"}, ["body", "reason"]),
        (
            {"target_kind": "photo", "target_id": "TARGET", "reason": "spam"},
            ["body", "target_kind"],
        ),
        ({"target_kind": "post", "target_id": "TARGET", "reason": "other"}, ["body"]),
        (
            {"target_kind": "post", "target_id": "TARGET", "reason": "spam", "text": "x" * 1001},
            ["body", "text"],
        ),
        (
            {"target_kind": "post", "target_id": "TARGET", "reason": "spam", "urgent": True},
            ["body", "urgent"],
        ),
    ],
)
async def test_malformed_reports_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
    body: dict[str, object],
    location: list[str],
) -> None:
    post = await write_post(client, member, "Fine post")
    sent = {k: (post["id"] if v == "TARGET" else v) for k, v in body.items()}
    response = await client.post("/community/v1/reports", json=sent, headers=other_member.headers)
    assert response.status_code == 422
    assert error(response) == "ValidationError"
    assert response.json()["detail"][0]["loc"] == location
    assert await count(session, Report) == 0
    assert await moderation_events(session) == []


async def test_reports_of_what_the_reporter_cannot_see_or_of_themselves_are_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    mine = await write_post(client, member, "My own post")
    own = await report(client, member, "post", mine["id"])
    assert (own.status_code, error(own)) == (422, "CannotReportSelf")
    myself = await report(client, member, "member", str(member.id))
    assert (myself.status_code, error(myself)) == (422, "CannotReportSelf")

    await block(client, brand, "scam")
    held = await write_post(client, other_member, "A scam for you")
    assert held["status"] == "held"
    stranger = await make_member("zed", other_brand)
    theirs = await write_post(client, stranger, "Other brand post")
    removed = await write_post(client, other_member, "Soon gone")
    assert (
        await client.delete(f"/community/v1/posts/{removed['id']}", headers=other_member.headers)
    ).status_code == 204
    missing = "01900000-0000-7000-8000-000000000000"
    for kind, target in (
        ("post", held["id"]),  # held: only its author sees it
        ("post", theirs["id"]),  # another brand's
        ("post", removed["id"]),
        ("post", missing),
        ("comment", missing),
        ("member", str(stranger.id)),
        ("comment", mine["id"]),  # a post's id is not a comment's
    ):
        response = await report(client, member, kind, target)
        assert response.status_code == 404, (kind, target)
        assert error(response) == "TargetNotFound"
    assert await count(session, Report) == 0
    assert await moderation_events(session) == []


async def test_staff_list_reports_and_other_brands_see_none(
    client: httpx.AsyncClient,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post = await write_post(client, member, "Look")
    filed = (await report(client, other_member, "post", post["id"])).json()
    listed = await client.get(
        "/community/v1/moderation/reports", params={"status": "open"}, headers=brand.headers
    )
    assert listed.json() == {"items": [filed], "next": None, "previous": None}
    theirs = await client.get("/community/v1/moderation/reports", headers=other_brand.headers)
    assert theirs.json() == {"items": [], "next": None, "previous": None}
    by_member = await client.get("/community/v1/moderation/reports", headers=member.headers)
    assert by_member.status_code == 403
