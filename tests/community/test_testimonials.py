"""Testimonials through the HTTP API: staff ask to feature a published post, the author consents
or not, the apps list live ones by sku; held, removed and foreign posts, and other brands."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import ContentStatus, Post, PostKind
from services.community.testimonials.models import FeaturedPost
from services.kernel.ids import new_id
from tests.community.conftest import MakeMember, community_events
from tests.conftest import BrandFixture, MemberFixture

TESTIMONIALS = "/community/v1/testimonials"
REQUESTS = "/community/v1/me/testimonial-requests"


async def post_by(
    session: AsyncSession,
    author: MemberFixture,
    *,
    status: ContentStatus = ContentStatus.PUBLISHED,
    review_sku: str | None = None,
    skus: tuple[str, ...] = (),
) -> uuid.UUID:
    """A post as the posts part leaves it (written, screened, approved or not): the
    precondition these tests start from."""
    post = Post(
        id=new_id(),
        brand_id=author.brand_id,
        author_id=author.id,
        kind=PostKind.REVIEW if review_sku else PostKind.POST,
        body="This serum changed my skin.",
        media=[{"url": "https://cdn.example.com/a.jpg", "alt": "the bottle"}],
        tags=[],
        skus=list(skus),
        review_sku=review_sku,
        rating=5 if review_sku else None,
        incentivised=False,
        status=status,
        held_reasons=[],
        body_hash=uuid.uuid4().hex,
    )
    session.add(post)
    await session.flush()
    return post.id


async def set_status(session: AsyncSession, post_id: uuid.UUID, status: ContentStatus) -> None:
    await session.execute(update(Post).where(Post.id == post_id).values(status=status))


async def feature(
    client: httpx.AsyncClient, staff: BrandFixture, post_id: uuid.UUID, **extra: Any
) -> httpx.Response:
    return await client.post(
        TESTIMONIALS, json={"post_id": str(post_id), **extra}, headers=staff.headers
    )


async def live(
    client: httpx.AsyncClient, staff: BrandFixture, author: MemberFixture, post_id: uuid.UUID
) -> dict[str, Any]:
    asked = await feature(client, staff, post_id)
    assert asked.status_code == 201, asked.text
    accepted = await client.post(f"{REQUESTS}/{asked.json()['id']}/accept", headers=author.headers)
    assert accepted.status_code == 200, accepted.text
    result: dict[str, Any] = accepted.json()
    return result


async def listed(client: httpx.AsyncClient, headers: dict[str, str], query: str = "") -> list[str]:
    response = await client.get(f"{TESTIMONIALS}?{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def stored(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(FeaturedPost)) or 0)


async def test_staff_ask_the_author_consents_and_the_review_shows_next_to_its_products(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post_id = await post_by(session, member, review_sku="SERUM-30", skus=("SERUM-30", "TONER"))

    asked = await feature(client, brand, post_id, note="May we show this on the serum page?")

    assert asked.status_code == 201, asked.text
    request = asked.json()
    assert request == {
        "id": request["id"],
        "status": "requested",
        "note": "May we show this on the serum page?",
        "requested_at": request["requested_at"],
        "answered_at": None,
        "withdrawn_at": None,
        "post_id": str(post_id),
        "author_id": str(member.id),
        "author_name": "Ada",
        "kind": "review",
        "body": "This serum changed my skin.",
        "media": [{"url": "https://cdn.example.com/a.jpg", "alt": "the bottle"}],
        "rating": 5,
        "review_sku": "SERUM-30",
        "skus": ["SERUM-30", "TONER"],
        "posted_at": request["posted_at"],
    }
    assert await community_events(session) == []
    mine = await client.get(REQUESTS, headers=member.headers)
    assert mine.json() == {"items": [request], "next": None, "previous": None}
    assert (await client.get(REQUESTS, headers=other_member.headers)).json()["items"] == []
    assert await listed(client, other_member.headers, "sku=SERUM-30") == []  # not live yet

    accepted = await client.post(f"{REQUESTS}/{request['id']}/accept", headers=member.headers)

    assert accepted.status_code == 200, accepted.text
    testimonial = accepted.json()
    assert testimonial == {
        **request,
        "status": "live",
        "answered_at": testimonial["answered_at"],
    }
    assert await community_events(session) == [
        (
            "post.featured",
            {
                "testimonial_id": request["id"],
                "post_id": str(post_id),
                "author_id": str(member.id),
                "kind": "review",
                "review_sku": "SERUM-30",
                "skus": ["SERUM-30", "TONER"],
                "featured_at": testimonial["answered_at"],
            },
        )
    ]
    by_sku = await client.get(f"{TESTIMONIALS}?sku=SERUM-30", headers=other_member.headers)
    assert by_sku.json() == {"items": [testimonial], "next": None, "previous": None}
    assert await listed(client, brand.headers, "sku=TONER") == [request["id"]]
    assert await listed(client, other_member.headers, "sku=LIPSTICK") == []
    assert (await client.get(REQUESTS, headers=member.headers)).json()["items"] == []

    again = await client.post(f"{REQUESTS}/{request['id']}/accept", headers=member.headers)
    assert (again.status_code, again.json()["error"]) == (409, "RequestAlreadyAnswered")
    assert len(await community_events(session)) == 1


@pytest.mark.parametrize("status", [ContentStatus.HELD, ContentStatus.REMOVED])
async def test_featuring_a_held_or_removed_post_is_409_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    status: ContentStatus,
) -> None:
    post_id = await post_by(session, member, status=status)

    response = await feature(client, brand, post_id)

    assert (response.status_code, response.json()["error"]) == (409, "PostNotPublished")
    assert status.value in response.json()["detail"]
    assert await stored(session) == 0


async def test_featuring_a_missing_post_or_by_a_member_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture, brand: BrandFixture
) -> None:
    missing = await feature(client, brand, uuid.uuid4())
    assert (missing.status_code, missing.json()["error"]) == (404, "PostNotFound")
    post_id = await post_by(session, member)
    by_member = await client.post(
        TESTIMONIALS, json={"post_id": str(post_id)}, headers=member.headers
    )
    assert (by_member.status_code, by_member.json()["error"]) == (403, "Forbidden")
    bad = await client.post(TESTIMONIALS, json={"post_id": "nope"}, headers=brand.headers)
    assert (bad.status_code, bad.json()["error"]) == (422, "ValidationError")
    assert await stored(session) == 0


async def test_one_open_request_per_post_and_a_declined_post_is_not_asked_again(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    post_id = await post_by(session, member)
    request = (await feature(client, brand, post_id)).json()

    twice = await feature(client, brand, post_id)
    assert (twice.status_code, twice.json()["error"]) == (409, "AlreadyFeatured")

    declined = await client.post(f"{REQUESTS}/{request['id']}/decline", headers=member.headers)
    assert declined.status_code == 200, declined.text
    assert declined.json()["status"] == "declined"
    accept_after = await client.post(f"{REQUESTS}/{request['id']}/accept", headers=member.headers)
    assert (accept_after.status_code, accept_after.json()["error"]) == (
        409,
        "RequestAlreadyAnswered",
    )
    asked_again = await feature(client, brand, post_id)
    assert (asked_again.status_code, asked_again.json()["error"]) == (409, "AuthorDeclined")
    assert await stored(session) == 1
    assert await community_events(session) == []
    assert await listed(client, brand.headers) == []


async def test_accepting_someone_elses_request_is_404_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    post_id = await post_by(session, member)
    request = (await feature(client, brand, post_id)).json()

    responses = [
        await client.post(f"{REQUESTS}/{request['id']}/accept", headers=other_member.headers),
        await client.post(f"{REQUESTS}/{request['id']}/decline", headers=other_member.headers),
        await client.post(f"{REQUESTS}/{uuid.uuid4()}/accept", headers=member.headers),
    ]

    assert [(r.status_code, r.json()["error"]) for r in responses] == [
        (404, "TestimonialRequestNotFound")
    ] * 3
    assert (await client.get(REQUESTS, headers=member.headers)).json()["items"] == [request]
    assert await community_events(session) == []


async def test_a_removed_posts_testimonial_disappears_and_cannot_be_accepted(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    shown = await live(client, brand, member, await post_by(session, member, skus=("SERUM",)))
    pending_post = await post_by(session, member, skus=("SERUM",))
    pending = (await feature(client, brand, pending_post)).json()
    assert await listed(client, other_member.headers, "sku=SERUM") == [shown["id"]]

    await set_status(session, uuid.UUID(shown["post_id"]), ContentStatus.REMOVED)
    await set_status(session, pending_post, ContentStatus.REMOVED)

    assert await listed(client, other_member.headers, "sku=SERUM") == []
    assert await listed(client, brand.headers, "status=live") == []
    assert (await client.get(REQUESTS, headers=member.headers)).json()["items"] == []
    events_before = await community_events(session)
    refused = await client.post(f"{REQUESTS}/{pending['id']}/accept", headers=member.headers)
    assert (refused.status_code, refused.json()["error"]) == (409, "PostNotPublished")
    assert await community_events(session) == events_before
    still = await client.get(f"{TESTIMONIALS}?status=requested", headers=brand.headers)
    assert [(t["id"], t["status"]) for t in still.json()["items"]] == [(pending["id"], "requested")]


async def test_staff_unfeature_and_may_feature_the_post_again_later(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    post_id = await post_by(session, member, skus=("SERUM",))
    shown = await live(client, brand, member, post_id)

    withdrawn = await client.post(f"{TESTIMONIALS}/{shown['id']}/unfeature", headers=brand.headers)
    assert withdrawn.status_code == 200, withdrawn.text
    assert (withdrawn.json()["status"], withdrawn.json()["withdrawn_at"] is not None) == (
        "withdrawn",
        True,
    )
    assert await listed(client, brand.headers, "sku=SERUM") == []

    twice = await client.post(f"{TESTIMONIALS}/{shown['id']}/unfeature", headers=brand.headers)
    assert (twice.status_code, twice.json()["error"]) == (409, "NotFeatured")
    missing = await client.post(f"{TESTIMONIALS}/{uuid.uuid4()}/unfeature", headers=brand.headers)
    assert (missing.status_code, missing.json()["error"]) == (404, "TestimonialNotFound")
    by_member = await client.post(f"{TESTIMONIALS}/{shown['id']}/unfeature", headers=member.headers)
    assert by_member.status_code == 403

    again = await feature(client, brand, post_id)
    assert (again.status_code, again.json()["status"]) == (201, "requested")


async def test_live_testimonials_page_newest_first_and_other_statuses_are_for_staff(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
) -> None:
    ids = [
        (await live(client, brand, member, await post_by(session, member, skus=("SERUM",))))["id"]
        for _ in range(3)
    ]
    first = await client.get(f"{TESTIMONIALS}?sku=SERUM&limit=2", headers=other_member.headers)
    assert [t["id"] for t in first.json()["items"]] == [ids[2], ids[1]]
    rest = await client.get(
        f"{TESTIMONIALS}?sku=SERUM&limit=2&after={first.json()['next']}",
        headers=other_member.headers,
    )
    assert ([t["id"] for t in rest.json()["items"]], rest.json()["next"]) == ([ids[0]], None)

    for_staff_only = await client.get(
        f"{TESTIMONIALS}?status=requested", headers=other_member.headers
    )
    assert (for_staff_only.status_code, for_staff_only.json()["error"]) == (
        403,
        "StaffOnlyFilter",
    )
    unknown = await client.get(f"{TESTIMONIALS}?status=pending", headers=brand.headers)
    assert (unknown.status_code, unknown.json()["error"]) == (422, "ValidationError")


async def test_a_member_or_key_of_another_brand_sees_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    post_id = await post_by(session, member, skus=("SERUM",))
    shown = await live(client, brand, member, post_id)
    pending = (await feature(client, brand, await post_by(session, member))).json()
    stranger = await make_member("stranger", other_brand)

    assert await listed(client, stranger.headers, "sku=SERUM") == []
    assert await listed(client, other_brand.headers, "sku=SERUM") == []
    assert (await client.get(REQUESTS, headers=stranger.headers)).json()["items"] == []
    responses = [
        await feature(client, other_brand, await post_by(session, member)),
        await client.post(f"{TESTIMONIALS}/{shown['id']}/unfeature", headers=other_brand.headers),
        await client.post(f"{REQUESTS}/{pending['id']}/accept", headers=stranger.headers),
    ]
    assert [(r.status_code, r.json()["error"]) for r in responses] == [
        (404, "PostNotFound"),
        (404, "TestimonialNotFound"),
        (404, "TestimonialRequestNotFound"),
    ]
    assert await stored(session) == 2
