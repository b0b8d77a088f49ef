"""Decisions (approve, remove, warn, suspend) and the moderation queue, for staff and for group
moderators, who act only in their own groups."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember, Post
from services.community.moderation.decisions import FOREVER
from services.community.moderation.models import Decision, Report
from services.kernel.clock import utcnow
from tests.community.conftest import MakeMember, community_events
from tests.community.moderation_helpers import (
    block,
    count,
    error,
    member_group,
    moderation_events,
    report,
    write_comment,
    write_post,
)
from tests.conftest import BrandFixture, MemberFixture

DECISIONS = "/community/v1/moderation/decisions"
QUEUE = "/community/v1/moderation/queue"
MISSING = "01900000-0000-7000-8000-000000000000"
UNFIT = "ActionNotApplicable"


async def decide(
    client: httpx.AsyncClient, headers: dict[str, str], kind: str, target_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        DECISIONS,
        json={"target_kind": kind, "target_id": target_id, "reason": "Breaks the rules", **body},
        headers=headers,
    )


async def post_status(session: AsyncSession, post_id: str) -> str:
    status = await session.scalar(
        select(Post.status)
        .where(Post.id == uuid.UUID(post_id))
        .execution_options(populate_existing=True)
    )
    return str(status)


async def test_staff_remove_a_reported_post_resolving_its_reports(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    post = await write_post(client, member, "Buy followers at my shop")
    third = await make_member("cleo")
    first = (await report(client, other_member, "post", post["id"])).json()
    second = (await report(client, third, "post", post["id"], reason="off_topic")).json()
    before = len(await community_events(session))

    decided = await decide(client, brand.headers, "post", post["id"], action="remove")
    assert decided.status_code == 201, decided.text
    decision = decided.json()
    key_id = decision["decided_by_key_id"]
    assert key_id is not None
    assert decision == {
        "id": decision["id"],
        "target_kind": "post",
        "target_id": post["id"],
        "target_author_id": str(member.id),
        "group_id": None,
        "action": "remove",
        "reason": "Breaks the rules",
        "suspend_days": None,
        "suspended_until": None,
        "decided_by_key_id": key_id,
        "decided_by_member_id": None,
        "resolved_reports": 2,
        "created_at": decision["created_at"],
    }
    assert await post_status(session, post["id"]) == "removed"
    new_events = (await community_events(session))[before:]
    assert [t for t, _ in new_events] == ["post.removed", "moderation.decided"]
    assert new_events[0][1]["removed_by"] == "moderator"
    assert new_events[0][1]["reason"] == "Breaks the rules"
    assert new_events[1][1] == {
        "decision_id": decision["id"],
        "target_kind": "post",
        "target_id": post["id"],
        "target_author_id": str(member.id),
        "group_id": None,
        "action": "remove",
        "reason": "Breaks the rules",
        "suspended_until": None,
        "decided_by_key_id": key_id,
        "decided_by_member_id": None,
        "resolved_report_ids": [first["id"], second["id"]],
    }
    reports = await client.get(
        "/community/v1/moderation/reports", params={"target_id": post["id"]}, headers=brand.headers
    )
    assert [(r["status"], r["decision_id"]) for r in reports.json()["items"]] == [
        ("resolved", decision["id"]),
        ("resolved", decision["id"]),
    ]
    history = await client.get(DECISIONS, params={"target_id": post["id"]}, headers=brand.headers)
    assert history.json() == {"items": [decision], "next": None, "previous": None}
    # Once resolved, the member may report the target again (it is removed now, so: not found).
    again = await report(client, other_member, "post", post["id"])
    assert (again.status_code, error(again)) == (404, "TargetNotFound")


async def test_staff_approve_held_content_and_dismiss_reports_on_published_content(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    await block(client, brand, "giveaway")
    held = await write_post(client, member, "My giveaway winners!")
    assert (held["status"], held["held_reasons"]) == ("held", ["blocklist"])
    published = await write_post(client, other_member, "Nothing wrong here")
    held_comment = await write_comment(client, member, published["id"], "Join my giveaway")
    assert held_comment["status"] == "held"
    before = len(await community_events(session))

    approved = await decide(client, brand.headers, "post", held["id"], action="approve")
    assert approved.status_code == 201
    assert await post_status(session, held["id"]) == "published"
    approved_comment = await decide(
        client, brand.headers, "comment", held_comment["id"], action="approve"
    )
    assert approved_comment.json()["group_id"] is None
    filed = (await report(client, member, "post", published["id"])).json()
    dismissed = await decide(client, brand.headers, "post", published["id"], action="approve")
    assert dismissed.json()["resolved_reports"] == 1
    assert await post_status(session, published["id"]) == "published"
    new_events = (await community_events(session))[before:]
    assert [t for t, _ in new_events] == [
        "post.approved",
        "moderation.decided",
        "comment.approved",
        "moderation.decided",
        "moderation.reported",
        "moderation.decided",
    ]
    assert new_events[-1][1]["resolved_report_ids"] == [filed["id"]]


async def test_staff_warn_and_suspend_authors_for_days_or_indefinitely(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post = await write_post(client, member, "Rude words")
    warned = await decide(client, brand.headers, "post", post["id"], action="warn")
    assert (warned.status_code, warned.json()["action"]) == (201, "warn")
    assert await post_status(session, post["id"]) == "published"

    start = utcnow()
    suspended = await decide(
        client, brand.headers, "post", post["id"], action="suspend", suspend_days=7
    )
    assert suspended.status_code == 201
    body = suspended.json()
    assert body["suspend_days"] == 7
    until = await session.scalar(
        select(CommunityMember.suspended_until)
        .where(CommunityMember.member_id == member.id)
        .execution_options(populate_existing=True)
    )
    assert until is not None
    assert start + timedelta(days=7) <= until <= utcnow() + timedelta(days=7)
    assert body["suspended_until"] == until.isoformat().replace("+00:00", "Z")
    events = await moderation_events(session)
    assert events[-1][1]["action"] == "suspend"
    assert events[-1][1]["suspended_until"] == body["suspended_until"]
    # A suspended member cannot act, but may still read.
    blocked = await client.post(
        "/community/v1/posts", json={"body": "I am back"}, headers=member.headers
    )
    assert (blocked.status_code, error(blocked)) == (403, "MemberSuspended")
    assert (await client.get("/community/v1/groups", headers=member.headers)).status_code == 200

    forever = await decide(client, brand.headers, "member", str(other_member.id), action="suspend")
    assert forever.status_code == 201
    assert (forever.json()["suspend_days"], forever.json()["suspended_until"]) == (None, None)
    other_until = await session.scalar(
        select(CommunityMember.suspended_until)
        .where(CommunityMember.member_id == other_member.id)
        .execution_options(populate_existing=True)
    )
    assert other_until == FOREVER
    assert (await moderation_events(session))[-1][1]["suspended_until"] is None
    still = await client.post(
        "/community/v1/posts", json={"body": "Let me in"}, headers=other_member.headers
    )
    assert (still.status_code, error(still)) == (403, "MemberSuspended")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"action": "ban"}, 422, "ValidationError"),
        ({"action": "remove", "reason": ""}, 422, "ValidationError"),
        ({"action": "warn", "suspend_days": 3}, 422, "ValidationError"),
        ({"action": "suspend", "suspend_days": 0}, 422, "ValidationError"),
        ({"action": "suspend", "suspend_days": "3"}, 422, "ValidationError"),
        ({"action": "remove", "target_kind": "photo"}, 422, "ValidationError"),
        ({"action": "remove", "target_id": MISSING}, 404, "TargetNotFound"),
        ({"action": "remove", "target_kind": "comment"}, 404, "TargetNotFound"),
        ({"action": "warn", "target_kind": "member", "target_id": MISSING}, 404, "TargetNotFound"),
        ({"action": "approve", "target_kind": "member", "target_id": "AUTHOR"}, 422, UNFIT),
        ({"action": "remove", "target_kind": "member", "target_id": "AUTHOR"}, 422, UNFIT),
        ({"action": "approve", "target_id": "REMOVED"}, 409, "AlreadyRemoved"),
        ({"action": "remove", "target_id": "REMOVED"}, 409, "AlreadyRemoved"),
    ],
)  # fmt: skip
async def test_bad_decisions_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    post = await write_post(client, member, "Reported post")
    removed = await write_post(client, member, "Deleted post")
    await client.delete(f"/community/v1/posts/{removed['id']}", headers=member.headers)
    await report(client, other_member, "post", post["id"])
    before = await community_events(session)
    names = {"TARGET": post["id"], "REMOVED": removed["id"], "AUTHOR": str(member.id)}
    sent: dict[str, Any] = {"target_kind": "post", "target_id": post["id"], "reason": "Because"}
    sent.update({k: names.get(v, v) if isinstance(v, str) else v for k, v in body.items()})
    response = await client.post(DECISIONS, json=sent, headers=brand.headers)
    assert response.status_code == status, response.text
    assert error(response) == code
    assert await count(session, Decision) == 0
    assert await community_events(session) == before
    still_open = await session.scalars(
        select(Report.status).execution_options(populate_existing=True)
    )
    assert list(still_open) == ["open"]


async def test_group_moderators_decide_only_in_their_groups_and_never_suspend(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    mod = await make_member("mod", trust_level=2)
    rival = await make_member("rival", trust_level=2)
    ours = await member_group(client, mod, "Curls", member, other_member)
    theirs = await member_group(client, rival, "Nails", member)
    await block(client, brand, "scam")
    in_ours = await write_post(client, member, "Curl cream tips", group_id=ours)
    held_in_ours = await write_post(client, member, "A curl scam", group_id=ours)
    held_comment = await write_comment(client, other_member, in_ours["id"], "scam comment")
    in_theirs = await write_post(client, member, "Nail polish tips", group_id=theirs)
    outside = await write_post(client, member, "Not in a group")
    own = await write_post(client, mod, "My own post", group_id=ours)
    report_ours = (await report(client, other_member, "post", in_ours["id"])).json()
    await report(client, other_member, "post", outside["id"])
    await report(client, mod, "post", in_theirs["id"])

    queue = await client.get(QUEUE, headers=mod.headers)
    assert queue.status_code == 200
    assert [(i["item"], i["target_id"]) for i in queue.json()["items"]] == [
        ("held", held_in_ours["id"]),
        ("held", held_comment["id"]),
        ("report", in_ours["id"]),
    ]
    assert queue.json()["items"][2] == {
        "id": report_ours["id"],
        "item": "report",
        "target_kind": "post",
        "target_id": in_ours["id"],
        "target_author_id": str(member.id),
        "group_id": ours,
        "reasons": ["spam"],
        "text": None,
        "reporter_id": str(other_member.id),
        "body": "Curl cream tips",
        "created_at": report_ours["created_at"],
    }
    assert queue.json()["items"][1]["group_id"] == ours  # a comment is in its post's group

    before = await community_events(session)
    for kind, target, action, code in (
        ("post", in_theirs["id"], "remove", "NotAModerator"),
        ("post", outside["id"], "remove", "NotAModerator"),
        ("member", str(member.id), "warn", "NotAModerator"),
        ("post", in_ours["id"], "suspend", "SuspendNeedsStaff"),
        ("post", own["id"], "approve", "CannotModerateSelf"),
    ):
        refused = await decide(client, mod.headers, kind, target, action=action)
        assert (refused.status_code, error(refused)) == (403, code), (kind, target, action)
    assert await community_events(session) == before
    assert await count(session, Decision) == 0

    removed = await decide(client, mod.headers, "post", in_ours["id"], action="remove")
    assert removed.status_code == 201
    assert removed.json()["decided_by_member_id"] == str(mod.id)
    assert removed.json()["decided_by_key_id"] is None
    assert removed.json()["group_id"] == ours
    approved = await decide(client, mod.headers, "post", held_in_ours["id"], action="approve")
    assert approved.status_code == 201
    assert await post_status(session, held_in_ours["id"]) == "published"
    after = await client.get(QUEUE, headers=mod.headers)
    assert [i["target_id"] for i in after.json()["items"]] == [held_comment["id"]]

    # A plain member has no queue and may not decide.
    no_queue = await client.get(QUEUE, headers=member.headers)
    assert (no_queue.status_code, error(no_queue)) == (403, "NotAModerator")
    plain = await decide(client, other_member.headers, "post", own["id"], action="remove")
    assert (plain.status_code, error(plain)) == (403, "NotAModerator")


async def test_the_staff_queue_holds_everything_oldest_first_in_pages(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    await block(client, brand, "scam")
    first = await write_post(client, member, "scam one")
    clean = await write_post(client, member, "clean post")
    filed = (await report(client, other_member, "post", clean["id"], reason="nudity")).json()
    second = await write_post(client, other_member, "scam two")
    on_member = (
        await report(client, member, "member", str(other_member.id), reason="impersonation")
    ).json()

    page = await client.get(QUEUE, params={"limit": 2}, headers=brand.headers)
    assert [(i["item"], i["id"]) for i in page.json()["items"]] == [
        ("held", first["id"]),
        ("report", filed["id"]),
    ]
    assert page.json()["items"][0]["reasons"] == ["blocklist"]
    assert page.json()["items"][0]["body"] == "scam one"
    rest = await client.get(QUEUE, params={"after": page.json()["next"]}, headers=brand.headers)
    assert [(i["item"], i["id"]) for i in rest.json()["items"]] == [
        ("held", second["id"]),
        ("report", on_member["id"]),
    ]
    assert rest.json()["items"][1]["body"] is None
    assert rest.json()["next"] is None

    # Another brand's staff see none of it and cannot decide on it.
    assert (await client.get(QUEUE, headers=other_brand.headers)).json() == {
        "items": [],
        "next": None,
        "previous": None,
    }
    foreign = await decide(client, other_brand.headers, "post", first["id"], action="approve")
    assert (foreign.status_code, error(foreign)) == (404, "TargetNotFound")
    assert await post_status(session, first["id"]) == "held"
