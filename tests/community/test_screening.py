"""The automatic first pass: blocklist, link and mention limits for new members, duplicate spam,
the brand's classifier, and the settings behind them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember, ContentStatus, Post
from services.community.moderation.models import (
    BlockedTerm,
    Classifier,
    ModerationSettings,
    TrainingExample,
)
from services.community.moderation.screening import Screening, screen
from services.community.posts.text import body_hash
from tests.community.conftest import MakeMember
from tests.community.moderation_helpers import block, count, error, write_comment, write_post
from tests.conftest import BrandFixture, MemberFixture

BLOCKLIST = "/community/v1/moderation/blocklist"
SETTINGS = "/community/v1/moderation/settings"
EXAMPLES = "/community/v1/moderation/classifier/examples"
TRAIN = "/community/v1/moderation/classifier/train"

DEFAULTS = {
    "new_member_max_links": 2,
    "new_member_max_mentions": 2,
    "duplicate_window_minutes": 1440,
    "duplicate_same_author": 1,
    "duplicate_other_authors": 2,
    "duplicate_min_length": 20,
    "classifier_threshold": 0.8,
}

FINE = [
    "Loving this new lipstick shade, it lasts all day",
    "My curls have never looked better with this cream",
    "Does anyone have tips for dry skin in winter?",
    "The summer palette is gorgeous on warm skin tones",
    "Just tried the new serum and my skin feels soft",
    "Which mascara do you recommend for sensitive eyes?",
    "Great customer service at the downtown store today",
    "This perfume reminds me of my grandmother's garden",
]
SPAM = [
    "Buy cheap followers now, click here for free money",
    "Earn $5000 a week from home, free money guaranteed",
    "Cheap replica watches, click here to buy now",
    "Win a free iPhone, click here now, limited offer",
    "Free money!!! Click here to claim your cash prize",
    "Buy cheap pills online now, no prescription",
    "Make money fast from home, click here",
    "Hot singles in your area, click here now",
]


def labelled() -> list[dict[str, str]]:
    return [{"text": t, "label": "ok"} for t in FINE] + [{"text": t, "label": "spam"} for t in SPAM]


async def community_member(session: AsyncSession, who: MemberFixture) -> CommunityMember:
    found = await session.scalar(
        select(CommunityMember)
        .where(CommunityMember.member_id == who.id)
        .execution_options(populate_existing=True)
    )
    assert found is not None
    return found


async def screened(session: AsyncSession, who: MemberFixture, text: str) -> Screening:
    author = await community_member(session, who)
    return await screen(
        session, brand_id=who.brand_id, author=author, text=text, body_hash=body_hash(text)
    )


async def put_settings(
    client: httpx.AsyncClient, brand: BrandFixture, **values: Any
) -> httpx.Response:
    return await client.put(SETTINGS, json=values, headers=brand.headers)


# --- Blocklist --------------------------------------------------------------------------------


async def test_staff_keep_a_blocklist_that_holds_matching_content(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    term = await block(client, brand, "  Free   SAMPLES ")
    assert term == {"id": term["id"], "term": "free samples", "created_at": term["created_at"]}
    scam = await block(client, brand, "scam")
    again = await client.post(BLOCKLIST, json={"term": "FREE samples"}, headers=brand.headers)
    assert (again.status_code, error(again)) == (409, "TermExists")
    for body in ({"term": ""}, {"term": "   "}, {}, {"term": "x" * 101}, {"term": "a", "b": 1}):
        bad = await client.post(BLOCKLIST, json=body, headers=brand.headers)
        assert bad.status_code == 422, body
    assert await count(session, BlockedTerm) == 2
    listed = await client.get(BLOCKLIST, headers=brand.headers)
    assert listed.json() == {"items": [term, scam], "next": None, "previous": None}
    assert (await client.get(BLOCKLIST, headers=other_brand.headers)).json()["items"] == []
    assert (await client.get(BLOCKLIST, headers=member.headers)).status_code == 403

    held = await write_post(client, member, "Get your FREE  Samples here")
    assert (held["status"], held["held_reasons"]) == ("held", ["blocklist"])
    # Whole words only: "scampi" is not "scam".
    fine = await write_post(client, member, "Garlic scampi recipe")
    assert (fine["status"], fine["held_reasons"]) == ("published", [])
    comment = await write_comment(client, other_member, fine["id"], "What a SCAM.")
    assert (comment["status"], comment["held_reasons"]) == ("held", ["blocklist"])
    # Another brand's members are not held by this brand's terms.
    stranger = await make_member("zed", other_brand)
    theirs = await write_post(client, stranger, "A scam for you")
    assert theirs["status"] == "published"

    foreign = await client.delete(f"{BLOCKLIST}/{scam['id']}", headers=other_brand.headers)
    assert (foreign.status_code, error(foreign)) == (404, "TermNotFound")
    assert (
        await client.delete(f"{BLOCKLIST}/{scam['id']}", headers=brand.headers)
    ).status_code == 204
    gone = await client.delete(f"{BLOCKLIST}/{scam['id']}", headers=brand.headers)
    assert (gone.status_code, error(gone)) == (404, "TermNotFound")
    assert (await write_post(client, member, "Not a scam after all"))["status"] == "published"


# --- Links and mentions -----------------------------------------------------------------------


async def test_new_members_with_too_many_links_or_mentions_are_held(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    three_links = "see https://a.example www.b.example and http://c.example/x"
    assert await screened(session, member, three_links) == Screening(ContentStatus.HELD, ["links"])
    two_links = "see https://a.example and www.b.example"
    assert await screened(session, member, two_links) == Screening(ContentStatus.PUBLISHED)

    three_mentions = "Thanks @ada @bea and @cleo.x! (mail me at me@example.com)"
    held = await write_post(client, member, three_mentions)
    assert (held["status"], held["held_reasons"]) == ("held", ["mentions"])
    two = await write_post(client, member, "Thanks @ada and @bea, write to hi@example.com")
    assert two["status"] == "published"

    # Members past trust level 0 have no limits.
    trusted = await make_member("tess", trust_level=1)
    assert (await write_post(client, trusted, three_mentions))["status"] == "published"
    assert await screened(session, trusted, three_links) == Screening(ContentStatus.PUBLISHED)

    # The brand's settings move the limits.
    assert (
        await put_settings(client, brand, new_member_max_links=0, new_member_max_mentions=5)
    ).status_code == 200
    assert await screened(session, member, "one https://a.example link") == Screening(
        ContentStatus.HELD, ["links"]
    )
    assert (await write_post(client, member, "Hi @a @b @c @d"))["status"] == "published"


# --- Duplicates -------------------------------------------------------------------------------


async def test_duplicate_bodies_from_one_author_or_several_are_held(
    client: httpx.AsyncClient,
    session: AsyncSession,
    member: MemberFixture,
    other_member: MemberFixture,
    make_member: MakeMember,
) -> None:
    text = "Check out my profile for amazing deals"
    first = await write_post(client, member, text)
    assert first["status"] == "published"
    # The same text again from the same author (in another case and spacing) is held.
    second = await write_post(client, member, "check out my  PROFILE for amazing deals")
    assert (second["status"], second["held_reasons"]) == ("held", ["duplicate"])
    # As a comment too.
    comment = await write_comment(client, member, first["id"], text)
    assert comment["held_reasons"] == ["duplicate"]

    # Short texts are never duplicates.
    for _ in range(3):
        assert (await write_comment(client, other_member, first["id"], "Love it!"))[
            "status"
        ] == "published"

    shared = "Best moisturiser I have ever used, truly"
    cleo = await make_member("cleo")
    dan = await make_member("dan")
    assert (await write_post(client, other_member, shared))["status"] == "published"
    assert (await write_post(client, cleo, shared))["status"] == "published"
    third = await write_post(client, dan, shared)
    assert (third["status"], third["held_reasons"]) == ("held", ["duplicate"])


async def test_copies_outside_the_window_do_not_count(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    text = "Check out my profile for amazing deals"
    await write_post(client, member, text)
    # Move the first copy back past a one-minute window.
    await session.execute(update(Post).values(created_at=Post.created_at - timedelta(minutes=2)))
    assert (await put_settings(client, brand, duplicate_window_minutes=1)).status_code == 200
    assert (await write_post(client, member, text))["status"] == "published"


# --- Classifier -------------------------------------------------------------------------------


async def test_a_trained_classifier_holds_obvious_spam_and_publishes_fine_text(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
    make_member: MakeMember,
) -> None:
    missing = await client.get("/community/v1/moderation/classifier", headers=brand.headers)
    assert (missing.status_code, error(missing)) == (404, "ClassifierNotTrained")
    added = await client.post(EXAMPLES, json={"examples": labelled()}, headers=brand.headers)
    assert added.status_code == 201
    assert added.json() == {"added": 16, "total": 16}
    trained = await client.post(TRAIN, headers=brand.headers)
    assert trained.status_code == 200, trained.text
    assert trained.json() == {
        "version": 1,
        "example_count": 16,
        "label_counts": {"ok": 8, "spam": 8},
        "trained_at": trained.json()["trained_at"],
    }
    current = await client.get("/community/v1/moderation/classifier", headers=brand.headers)
    assert current.json() == trained.json()

    spam = await write_post(client, member, "Click here for free money, buy cheap followers now")
    assert (spam["status"], spam["held_reasons"]) == ("held", ["classifier"])
    fine = await write_post(client, member, "I love how this cream makes my curls look")
    assert (fine["status"], fine["held_reasons"]) == ("published", [])
    comment = await write_comment(
        client, member, fine["id"], "Earn free money from home, click here now"
    )
    assert comment["held_reasons"] == ["classifier"]

    # Another brand's posts are not judged by this brand's model.
    stranger = await make_member("zed", other_brand)
    theirs = await write_post(client, stranger, "Click here for free money, buy cheap followers")
    assert theirs["status"] == "published"
    foreign = await client.get("/community/v1/moderation/classifier", headers=other_brand.headers)
    assert foreign.status_code == 404
    assert (await client.get(EXAMPLES, headers=other_brand.headers)).json()["items"] == []

    # A threshold of 1 turns the classifier off.
    assert (await put_settings(client, brand, classifier_threshold=1)).status_code == 200
    assert (await write_post(client, member, "Win a free iPhone, click here now"))[
        "status"
    ] == "published"


async def test_training_is_deterministic_and_versions_the_model(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    await client.post(EXAMPLES, json={"examples": labelled()}, headers=brand.headers)
    first = (await client.post(TRAIN, headers=brand.headers)).json()
    model = await session.scalar(select(Classifier).execution_options(populate_existing=True))
    assert model is not None
    parameters = model.parameters
    second = (await client.post(TRAIN, headers=brand.headers)).json()
    assert (first["version"], second["version"]) == (1, 2)
    model = await session.scalar(select(Classifier).execution_options(populate_existing=True))
    assert model is not None
    assert model.parameters == parameters


async def test_training_needs_enough_examples_and_bad_examples_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    few = [{"text": "fine text", "label": "ok"}, {"text": "nice", "label": "ok"}]
    few.append({"text": "buy now", "label": "abusive"})
    await client.post(EXAMPLES, json={"examples": few}, headers=brand.headers)
    refused = await client.post(TRAIN, headers=brand.headers)
    assert (refused.status_code, error(refused)) == (422, "NotEnoughExamples")
    assert await count(session, Classifier) == 0
    bodies: list[dict[str, Any]] = [
        {"examples": []},
        {"examples": [{"text": "x", "label": "meh"}]},
        {"examples": [{"text": "  ", "label": "ok"}]},
        {"examples": [{"label": "ok"}]},
        {"examples": [{"text": "ok", "label": "ok", "weight": 2}]},
        {},
    ]
    for body in bodies:
        bad = await client.post(EXAMPLES, json=body, headers=brand.headers)
        assert (bad.status_code, error(bad)) == (422, "ValidationError"), body
    assert await count(session, TrainingExample) == 3
    by_member = await client.post(EXAMPLES, json={"examples": few}, headers=member.headers)
    assert by_member.status_code == 403
    listed = await client.get(EXAMPLES, headers=brand.headers)
    assert [e["label"] for e in listed.json()["items"]] == ["ok", "ok", "abusive"]
    first_id = listed.json()["items"][0]["id"]
    assert (await client.delete(f"{EXAMPLES}/{first_id}", headers=brand.headers)).status_code == 204
    gone = await client.delete(f"{EXAMPLES}/{first_id}", headers=brand.headers)
    assert (gone.status_code, error(gone)) == (404, "ExampleNotFound")


# --- Settings ---------------------------------------------------------------------------------


async def test_settings_have_defaults_and_staff_replace_them(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    other_brand: BrandFixture,
    member: MemberFixture,
) -> None:
    assert (await client.get(SETTINGS, headers=brand.headers)).json() == DEFAULTS
    put = await put_settings(client, brand, new_member_max_links=5, classifier_threshold=0.95)
    assert put.status_code == 200
    expected = {**DEFAULTS, "new_member_max_links": 5, "classifier_threshold": 0.95}
    assert put.json() == expected
    assert (await client.get(SETTINGS, headers=brand.headers)).json() == expected
    # PUT replaces: what is omitted goes back to its default.
    again = await put_settings(client, brand, duplicate_same_author=3)
    assert again.json() == {**DEFAULTS, "duplicate_same_author": 3}
    assert (await client.get(SETTINGS, headers=other_brand.headers)).json() == DEFAULTS
    assert (await client.get(SETTINGS, headers=member.headers)).status_code == 403


@pytest.mark.parametrize(
    "values",
    [
        {"new_member_max_links": -1},
        {"new_member_max_mentions": "2"},
        {"duplicate_window_minutes": 0},
        {"classifier_threshold": 0},
        {"classifier_threshold": 1.5},
        {"classifier_threshold": "high"},
        {"spam_level": 3},
    ],
)
async def test_bad_settings_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    values: dict[str, Any],
) -> None:
    response = await put_settings(client, brand, **values)
    assert (response.status_code, error(response)) == (422, "ValidationError")
    assert response.json()["detail"][0]["loc"][:2] == ["body", next(iter(values))]
    assert await count(session, ModerationSettings) == 0


# --- Everything together ----------------------------------------------------------------------


async def test_every_rule_that_matches_is_a_reason(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture, member: MemberFixture
) -> None:
    await block(client, brand, "cash prize")
    await client.post(EXAMPLES, json={"examples": labelled()}, headers=brand.headers)
    await client.post(TRAIN, headers=brand.headers)
    text = "Free money! Click here now for a cash prize @a @b @c"
    await write_post(client, member, text)
    again = await write_post(client, member, text)
    assert again["held_reasons"] == ["blocklist", "mentions", "duplicate", "classifier"]


async def test_screening_an_edit_does_not_count_the_content_as_its_own_copy(
    client: httpx.AsyncClient, session: AsyncSession, member: MemberFixture
) -> None:
    text = "Check out my profile for amazing deals"
    post = await write_post(client, member, text)
    author = await community_member(session, member)
    digest = body_hash(text)
    as_new = await screen(
        session, brand_id=member.brand_id, author=author, text=text, body_hash=digest
    )
    assert as_new == Screening(ContentStatus.HELD, ["duplicate"])
    as_edit = await screen(
        session,
        brand_id=member.brand_id,
        author=author,
        text=text,
        body_hash=digest,
        content_id=uuid.UUID(post["id"]),
    )
    assert as_edit == Screening(ContentStatus.PUBLISHED)
