"""The demo brand's community: groups, posts with comments and reactions, follows, a prompt with
answers, a challenge in progress and experiences next week with bookings, all through the
public API, each member acting with their own member token.

Deterministic for a given seed; times are relative to `now`, so the demo always looks current.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from services.demo.api import send
from services.demo.members import CATEGORIES

GROUPS = [
    ("Curly hair", "Routines, products and wash days for curls and coils."),
    ("Fragrance collectors", "Notes, layering and the bottles we keep coming back to."),
    ("Skincare nerds", "Actives, patch tests and what actually worked."),
]
_OPENINGS = [
    "Finally found my holy grail",
    "Week three of my new routine",
    "Quick question for the experts",
    "Haul from the weekend sale",
    "Before and after, one month in",
    "Layering tip that changed everything",
    "Honest thoughts after a month",
    "My travel kit for the summer",
]
_DETAILS = {
    "skincare": "the serum under a light moisturiser, SPF every single morning",
    "makeup": "a sheer base, cream blush and the lip that survives coffee",
    "fragrance": "a woody base with a citrus top, two sprays on the wrists",
    "hair": "a leave-in on damp hair and the oil only on the ends",
    "bath": "a long soak with the salts after the gym",
    "tools": "a damp sponge pressed, never swiped",
}
_COMMENTS = [
    "Love this, thanks for sharing!",
    "Trying this tonight.",
    "How long did it take to see a difference?",
    "Same here, it really works.",
    "Which shade do you use?",
    "Saving this for later.",
]
_REACTIONS = ["love", "helpful", "wow", "support"]

TokenFor = Callable[[str], str]  # member id → a member token


def _member(token: str, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def _post_body(rng: random.Random, n: int, interests: Sequence[str]) -> dict[str, Any]:
    category = rng.choice(interests or CATEGORIES)
    return {
        "body": f"{rng.choice(_OPENINGS)} (#{n}): {_DETAILS[category]}.",
        "tags": [category, rng.choice(["routine", "tips", "haul", "review"])],
    }


async def seed_community(
    client: httpx.AsyncClient,
    staff: dict[str, str],
    members: Sequence[dict[str, Any]],
    token_for: TokenFor,
    now: datetime,
    seed: int = 23,
) -> None:
    """`members` are the seeded members' public records (with `id` and `interests`)."""
    rng = random.Random(seed)
    # The two in five who take part (at most 200); the rest of the brand only reads.
    active = list(members[: min(200, max(20, len(members) * 2 // 5))])
    tokens = {m["id"]: token_for(m["id"]) for m in active}

    groups = [
        await send(client, "POST", "/community/v1/groups", staff, {"name": n, "description": d})
        for n, d in GROUPS
    ]
    joined: dict[str, list[str]] = {g["id"]: [] for g in groups}
    for member in active[: len(active) * 9 // 20]:
        group = rng.choice(groups)
        path = f"/community/v1/groups/{group['id']}/members"
        await send(client, "POST", path, _member(tokens[member["id"]]))
        joined[group["id"]].append(member["id"])

    badge = await send(
        client,
        "POST",
        "/community/v1/badges",
        staff,
        {"name": "Glow month finisher", "description": "Completed the Glow month challenge."},
    )
    challenge = await send(
        client,
        "POST",
        "/community/v1/challenges",
        staff,
        {
            "title": "Glow month",
            "description": "Share your routine, cheer others on, get glowing.",
            "starts_at": (now - timedelta(days=5)).isoformat(),
            "ends_at": (now + timedelta(days=23)).isoformat(),
            "points": 300,
            "badge_id": badge["id"],
            "steps": [
                {"action": "post", "target": 3},
                {"action": "comment", "target": 5},
                {"action": "reaction", "target": 10},
            ],
        },
    )
    for member in active[: len(active) // 5]:
        path = f"/community/v1/challenges/{challenge['id']}/participants"
        await send(client, "POST", path, _member(tokens[member["id"]]))

    for member in active:  # each follows a handful of the others
        for followee in rng.sample(active, 5):
            if followee["id"] != member["id"]:
                path = f"/community/v1/me/following/{followee['id']}"
                await send(client, "PUT", path, _member(tokens[member["id"]]))

    posts: list[tuple[str, str, str | None]] = []  # (post id, author id, group id)
    for n in range(1, len(active) * 3 // 5 + 1):
        author = rng.choice(active)
        body = _post_body(rng, n, author["interests"])
        groups_of_author = [g for g, ids in joined.items() if author["id"] in ids]
        if groups_of_author and rng.random() < 0.4:
            body["group_id"] = groups_of_author[0]
        if n % 5 == 0:  # every fifth post reviews a product
            category = rng.choice(author["interests"] or CATEGORIES)
            body |= {
                "kind": "review",
                "review_sku": f"SKU-{category.upper()}-{n:03d}",
                "rating": rng.choice([3, 4, 5, 5]),
            }
        post = await send(
            client, "POST", "/community/v1/posts", _member(tokens[author["id"]]), body
        )
        posts.append((post["id"], author["id"], body.get("group_id")))

    for post_id, author_id, group_id in posts:
        # Only a group's members may talk in it.
        audience = joined[group_id] if group_id is not None else [m["id"] for m in active]
        others = [m for m in active if m["id"] != author_id and m["id"] in audience]
        for member in rng.sample(others, min(len(others), rng.randint(0, 3))):
            await send(
                client,
                "POST",
                f"/community/v1/posts/{post_id}/comments",
                _member(tokens[member["id"]]),
                {"body": f"{rng.choice(_COMMENTS)} ({member['display_name']})"},
            )
        for member in rng.sample(others, min(len(others), rng.randint(1, 6))):
            await send(
                client,
                "POST",
                f"/community/v1/posts/{post_id}/reactions",
                _member(tokens[member["id"]]),
                {"kind": rng.choice(_REACTIONS)},
            )

    prompt = await send(
        client,
        "POST",
        "/community/v1/prompts",
        staff,
        {
            "title": "Show us your summer look",
            "body": "One photo, three products, your best tip for the heat.",
            "tags": ["summer", "makeup"],
            "starts_at": (now - timedelta(days=2)).isoformat(),
            "ends_at": (now + timedelta(days=12)).isoformat(),
            "points": 50,
        },
    )
    for n, member in enumerate(rng.sample(active, min(15, len(active))), start=1):
        body = _post_body(rng, 1000 + n, member["interests"])
        body["tags"] = ["summer"]
        path = f"/community/v1/prompts/{prompt['id']}/answers"
        await send(client, "POST", path, _member(tokens[member["id"]]), body)

    await _seed_experiences(client, staff, active, tokens, now, rng)


async def _seed_experiences(
    client: httpx.AsyncClient,
    staff: dict[str, str],
    active: Sequence[dict[str, Any]],
    tokens: dict[str, str],
    now: datetime,
    rng: random.Random,
) -> None:
    week = (now + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
    offers = [
        (
            {
                "title": "Skin prep masterclass",
                "description": "Our artists' prep routine, step by step, with samples to keep.",
                "kind": "masterclass",
                "tags": ["skincare", "makeup"],
            },
            {"kind": "address", "address": "Flagship store, 12 Rue de Rivoli, Paris"},
            12,
            None,
        ),
        (
            {
                "title": "Fragrance layering evening",
                "description": "Find your signature blend with our perfumer.",
                "kind": "store_event",
                "tags": ["fragrance"],
            },
            {"kind": "address", "address": "Kinfolk Beauty, 5 Carnaby Street, London"},
            20,
            250,
        ),
        (
            {
                "title": "Curl care live Q&A",
                "description": "Bring your wash-day questions.",
                "kind": "meetup",
                "tags": ["hair"],
            },
            {"kind": "online", "url": "https://live.example.com/curl-care"},
            100,
            None,
        ),
    ]
    for n, (experience, place, capacity, price) in enumerate(offers):
        created = await send(client, "POST", "/community/v1/experiences", staff, experience)
        starts = week + timedelta(days=n, hours=18 - week.hour)
        session = await send(
            client,
            "POST",
            f"/community/v1/experiences/{created['id']}/sessions",
            staff,
            {
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "time_zone": "Europe/Paris" if n != 1 else "Europe/London",
                "place": place,
                "capacity": capacity,
                "price_points": price,
            },
        )
        for member in rng.sample(list(active), min(capacity + 3, 15)):
            key = f"demo-booking-{session['id']}-{member['id']}"
            await send(
                client,
                "POST",
                f"/community/v1/sessions/{session['id']}/bookings",
                _member(tokens[member["id"]], key),
                {"seats": 1},
            )
