"""The ideas board through the HTTP API: proposing, voting, commenting, the brand's answers and
what voters are told; bad input and other brands."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.ideas import service as ideas_service
from services.community.ideas.models import Idea, IdeaComment, IdeaVote
from tests.community.conftest import MakeMember, community_events
from tests.conftest import BrandFixture, MemberFixture

IDEAS = "/community/v1/ideas"


async def propose(
    client: httpx.AsyncClient, author: MemberFixture, **changes: Any
) -> dict[str, Any]:
    body = {"title": "Refill pouches", "body": "Sell the serum in refills.", "category": "product"}
    response = await client.post(IDEAS, json={**body, **changes}, headers=author.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def count(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_member_proposes_an_idea_counted_with_their_own_vote(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    idea = await propose(
        client, member, title="  Refill pouches ", body="Sell the serum in refills."
    )

    assert idea == {
        "id": idea["id"],
        "author_id": str(member.id),
        "author_name": "Ada",
        "title": "Refill pouches",
        "body": "Sell the serum in refills.",
        "category": "product",
        "status": "new",
        "reply": None,
        "status_changed_at": None,
        "vote_count": 1,
        "comment_count": 0,
        "created_at": idea["created_at"],
        "voted": True,
    }
    assert await community_events(session) == [
        (
            "idea.created",
            {
                "idea_id": idea["id"],
                "author_id": str(member.id),
                "title": "Refill pouches",
                "category": "product",
                "status": "new",
                "vote_count": 1,
            },
        )
    ]
    seen_by_other = await client.get(f"{IDEAS}/{idea['id']}", headers=other_member.headers)
    assert seen_by_other.json() == {**idea, "voted": False}
    seen_by_staff = await client.get(f"{IDEAS}/{idea['id']}", headers=brand.headers)
    assert seen_by_staff.json() == {**idea, "voted": None}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 151}, "title"),
        ({"body": ""}, "body"),
        ({"body": "x" * 5_001}, "body"),
        ({"category": "lipstick"}, "category"),
        ({"status": "planned"}, "status"),
    ],
)
async def test_bad_ideas_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    changes: dict[str, Any],
    field: str,
) -> None:
    body = {"title": "Refills", "body": "Please.", "category": "product", **changes}
    response = await client.post(IDEAS, json=body, headers=member.headers)

    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
    assert [err["loc"][-1] for err in response.json()["detail"]] == [field]
    assert await count(session, Idea) == 0
    assert await community_events(session) == []


async def test_proposing_with_an_idempotency_key_twice_makes_one_idea(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    body = {"title": "Refills", "body": "Please.", "category": "program"}
    headers = {**member.headers, "Idempotency-Key": "idea-1"}
    first = await client.post(IDEAS, json=body, headers=headers)
    again = await client.post(IDEAS, json=body, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await count(session, Idea) == 1


async def test_one_vote_per_member_an_unvote_and_no_vote_for_your_own_idea_twice(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    idea = await propose(client, member)
    vote_url = f"{IDEAS}/{idea['id']}/vote"

    voted = await client.post(vote_url, headers=other_member.headers)
    assert voted.status_code == 200, voted.text
    assert (voted.json()["vote_count"], voted.json()["voted"]) == (2, True)
    assert (await community_events(session))[-1] == (
        "idea.voted",
        {
            "idea_id": idea["id"],
            "author_id": str(member.id),
            "member_id": str(other_member.id),
            "vote_count": 2,
        },
    )

    events_before = await community_events(session)
    twice = await client.post(vote_url, headers=other_member.headers)
    own = await client.post(vote_url, headers=member.headers)
    assert (twice.status_code, twice.json()["error"]) == (409, "AlreadyVoted")
    assert (own.status_code, own.json()["error"]) == (409, "AlreadyVoted")
    assert await count(session, IdeaVote) == 2
    assert await community_events(session) == events_before
    fetched = await client.get(f"{IDEAS}/{idea['id']}", headers=other_member.headers)
    assert fetched.json()["vote_count"] == 2

    unvoted = await client.delete(vote_url, headers=other_member.headers)
    assert (unvoted.status_code, unvoted.json()["vote_count"], unvoted.json()["voted"]) == (
        200,
        1,
        False,
    )
    again = await client.delete(vote_url, headers=other_member.headers)
    assert (again.status_code, again.json()["error"]) == (404, "VoteNotFound")
    assert await count(session, IdeaVote) == 1
    revoted = await client.post(vote_url, headers=other_member.headers)
    assert revoted.json()["vote_count"] == 2


async def test_voting_on_a_missing_idea_is_404_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    missing = f"{IDEAS}/{uuid.uuid4()}"
    responses = [
        await client.post(f"{missing}/vote", headers=member.headers),
        await client.delete(f"{missing}/vote", headers=member.headers),
        await client.post(f"{missing}/comments", json={"body": "Yes"}, headers=member.headers),
        await client.get(missing, headers=member.headers),
    ]
    assert [(r.status_code, r.json()["error"]) for r in responses] == [(404, "IdeaNotFound")] * 4
    assert await count(session, IdeaVote) == 0
    assert await count(session, IdeaComment) == 0
    assert await community_events(session) == []


async def test_the_board_by_votes_and_by_newest_in_keyset_pages(
    client: httpx.AsyncClient, make_member: MakeMember, member: MemberFixture
) -> None:
    voters = [await make_member(f"voter-{n}") for n in range(3)]
    await propose(client, member, title="Low")
    top = await propose(client, member, title="Top", category="program")
    mid = await propose(client, member, title="Mid")
    tie = await propose(client, member, title="Tie")  # newest; as many votes as Mid
    for voter in voters:
        await client.post(f"{IDEAS}/{top['id']}/vote", headers=voter.headers)
    for idea in (mid, tie):
        await client.post(f"{IDEAS}/{idea['id']}/vote", headers=voters[0].headers)

    async def titles(query: str, viewer: MemberFixture = member) -> tuple[list[str], str | None]:
        response = await client.get(f"{IDEAS}?{query}", headers=viewer.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        return [i["title"] for i in page["items"]], page["next"]

    first, cursor = await titles("limit=2")
    assert first == ["Top", "Tie"]
    second, cursor = await titles(f"limit=2&after={cursor}")
    assert (second, cursor) == (["Mid", "Low"], None)

    newest, cursor = await titles("sort=newest&limit=3")
    assert newest == ["Tie", "Mid", "Top"]
    assert await titles(f"sort=newest&limit=3&after={cursor}") == (["Low"], None)

    assert await titles("category=program") == (["Top"], None)
    assert await titles("status=planned") == ([], None)
    marks = await client.get(f"{IDEAS}?limit=4", headers=voters[0].headers)
    assert [i["voted"] for i in marks.json()["items"]] == [True, True, True, False]

    bad = await client.get(f"{IDEAS}?after=not-a-cursor", headers=member.headers)
    assert (bad.status_code, bad.json()["error"]) == (400, "InvalidCursor")
    bad_sort = await client.get(f"{IDEAS}?sort=hot", headers=member.headers)
    assert (bad_sort.status_code, bad_sort.json()["error"]) == (422, "ValidationError")


async def test_comments_are_kept_in_order_and_empty_or_oversize_ones_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    idea = await propose(client, member)
    url = f"{IDEAS}/{idea['id']}/comments"

    first = await client.post(url, json={"body": " Love it "}, headers=other_member.headers)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "id": first.json()["id"],
        "idea_id": idea["id"],
        "author_id": str(other_member.id),
        "author_name": "Bea",
        "body": "Love it",
        "created_at": first.json()["created_at"],
    }
    await client.post(url, json={"body": "Me too"}, headers=member.headers)

    for body in ({"body": "  "}, {"body": "x" * 2_001}, {}):
        refused = await client.post(url, json=body, headers=member.headers)
        assert (refused.status_code, refused.json()["error"]) == (422, "ValidationError")
    assert await count(session, IdeaComment) == 2

    page = await client.get(f"{url}?limit=1", headers=brand.headers)
    assert [c["body"] for c in page.json()["items"]] == ["Love it"]
    rest = await client.get(f"{url}?after={page.json()['next']}", headers=member.headers)
    assert ([c["body"] for c in rest.json()["items"]], rest.json()["next"]) == (["Me too"], None)
    fetched = await client.get(f"{IDEAS}/{idea['id']}", headers=member.headers)
    assert fetched.json()["comment_count"] == 2


async def test_the_brand_answers_and_every_voter_is_listed_to_hear_of_it(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    idea = await propose(client, member)
    await client.post(f"{IDEAS}/{idea['id']}/vote", headers=other_member.headers)
    url = f"{IDEAS}/{idea['id']}/status"

    answered = await client.put(
        url, json={"status": "planned", "reply": "Coming this spring!"}, headers=brand.headers
    )

    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert (body["status"], body["reply"], body["vote_count"]) == (
        "planned",
        "Coming this spring!",
        2,
    )
    assert body["status_changed_at"] is not None
    assert (await community_events(session))[-1] == (
        "idea.status_changed",
        {
            "idea_id": idea["id"],
            "author_id": str(member.id),
            "title": "Refill pouches",
            "from_status": "new",
            "to_status": "planned",
            "reply": "Coming this spring!",
            "voter_count": 2,
            "voter_ids": [str(member.id), str(other_member.id)],
            "voters_next": None,
        },
    )
    seen = await client.get(f"{IDEAS}/{idea['id']}", headers=other_member.headers)
    assert (seen.json()["status"], seen.json()["reply"]) == ("planned", "Coming this spring!")

    # The same status again only rewords the reply: voters already heard of it.
    events_before = await community_events(session)
    reworded = await client.put(
        url, json={"status": "planned", "reply": "Coming in May."}, headers=brand.headers
    )
    assert (reworded.json()["status"], reworded.json()["reply"]) == ("planned", "Coming in May.")
    assert await community_events(session) == events_before

    for bad in ({"status": "shipped"}, {"status": "new"}, {"reply": "Hi"}):
        refused = await client.put(url, json=bad, headers=brand.headers)
        assert (refused.status_code, refused.json()["error"]) == (422, "ValidationError")
    by_member = await client.put(url, json={"status": "declined"}, headers=member.headers)
    assert (by_member.status_code, by_member.json()["error"]) == (403, "Forbidden")
    missing = await client.put(
        f"{IDEAS}/{uuid.uuid4()}/status", json={"status": "planned"}, headers=brand.headers
    )
    assert (missing.status_code, missing.json()["error"]) == (404, "IdeaNotFound")
    assert await community_events(session) == events_before
    unchanged = await client.get(f"{IDEAS}/{idea['id']}", headers=brand.headers)
    assert (unchanged.json()["status"], unchanged.json()["reply"]) == ("planned", "Coming in May.")


async def test_launched_and_declined_ideas_are_closed_to_votes_but_not_to_unvotes(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    idea = await propose(client, member)
    late = await make_member("late")
    await client.post(f"{IDEAS}/{idea['id']}/vote", headers=other_member.headers)
    await client.put(
        f"{IDEAS}/{idea['id']}/status", json={"status": "declined"}, headers=brand.headers
    )

    refused = await client.post(f"{IDEAS}/{idea['id']}/vote", headers=late.headers)
    assert (refused.status_code, refused.json()["error"]) == (409, "IdeaClosed")
    assert await count(session, IdeaVote) == 2
    unvoted = await client.delete(f"{IDEAS}/{idea['id']}/vote", headers=other_member.headers)
    assert unvoted.json()["vote_count"] == 1


async def test_past_the_bound_the_event_lists_the_first_voters_and_the_rest_are_paged(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ideas_service, "VOTER_IDS_LIMIT", 2)
    idea = await propose(client, member)
    voters = [await make_member(f"voter-{n}") for n in range(3)]
    for voter in voters:
        await client.post(f"{IDEAS}/{idea['id']}/vote", headers=voter.headers)

    await client.put(
        f"{IDEAS}/{idea['id']}/status", json={"status": "launched"}, headers=brand.headers
    )

    _, data = (await community_events(session))[-1]
    assert (data["voter_count"], data["voter_ids"]) == (4, [str(member.id), str(voters[0].id)])
    rest = await client.get(
        f"{IDEAS}/{idea['id']}/voters?after={data['voters_next']}", headers=brand.headers
    )
    assert rest.status_code == 200, rest.text
    assert [v["member_id"] for v in rest.json()["items"]] == [str(v.id) for v in voters[1:]]
    assert rest.json()["next"] is None
    by_member = await client.get(f"{IDEAS}/{idea['id']}/voters", headers=member.headers)
    assert by_member.status_code == 403


async def test_a_member_or_key_of_another_brand_sees_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    idea = await propose(client, member)
    stranger = await make_member("stranger", other_brand)
    url = f"{IDEAS}/{idea['id']}"

    listed = await client.get(IDEAS, headers=stranger.headers)
    assert listed.json() == {"items": [], "next": None, "previous": None}
    staff_listed = await client.get(IDEAS, headers=other_brand.headers)
    assert staff_listed.json() == {"items": [], "next": None, "previous": None}
    responses = [
        await client.get(url, headers=stranger.headers),
        await client.post(f"{url}/vote", headers=stranger.headers),
        await client.post(f"{url}/comments", json={"body": "Hi"}, headers=stranger.headers),
        await client.get(f"{url}/comments", headers=stranger.headers),
        await client.put(f"{url}/status", json={"status": "planned"}, headers=other_brand.headers),
        await client.get(f"{url}/voters", headers=other_brand.headers),
    ]
    assert [(r.status_code, r.json()["error"]) for r in responses] == [(404, "IdeaNotFound")] * 6
    assert await count(session, IdeaVote) == 1
    assert [t for t, _ in await community_events(session)] == ["idea.created"]
