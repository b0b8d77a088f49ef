"""Demo members: deterministic, with beauty-profile traits and interests."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import httpx

FIRST_NAMES = [
    "Ava",
    "Mia",
    "Zoe",
    "Lena",
    "Nora",
    "Iris",
    "Maya",
    "Ruby",
    "Sofia",
    "Alex",
    "Sam",
    "Noah",
    "Leo",
    "Jules",
    "Rosa",
    "Ines",
    "Yara",
    "Omar",
    "Kai",
    "Elif",
]
LAST_NAMES = [
    "Martin",
    "Garcia",
    "Chen",
    "Okafor",
    "Rossi",
    "Nguyen",
    "Silva",
    "Dubois",
    "Khan",
    "Novak",
    "Larsen",
    "Moreau",
    "Tanaka",
    "Haddad",
    "Kowalski",
]
SKIN_TYPES = ["dry", "oily", "combination", "normal", "sensitive"]
CONCERNS = ["acne", "dullness", "redness", "fine lines", "dark spots", "pores", "dehydration"]
CATEGORIES = ["skincare", "makeup", "fragrance", "hair", "bath", "tools"]
TIME_ZONES = [
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
]
LOCALES = ["fr-FR", "en-GB", "en-US", "en-US", "ja-JP"]


def demo_members(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Deterministic demo members with beauty-profile traits and interests."""
    rng = random.Random(seed)
    members = []
    for n in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        place = rng.randrange(len(TIME_ZONES))
        favourites = rng.sample(CATEGORIES, k=rng.randint(1, 3))
        members.append(
            {
                "external_id": f"demo-{n:05d}",
                "email": f"{first.lower()}.{last.lower()}.{n}@example.com",
                "display_name": f"{first} {last[0]}.",
                "birthday": date(
                    rng.randint(1960, 2006), rng.randint(1, 12), rng.randint(1, 28)
                ).isoformat(),
                "locale": LOCALES[place],
                "time_zone": TIME_ZONES[place],
                "traits": {
                    "skin_type": rng.choice(SKIN_TYPES),
                    "concerns": rng.sample(CONCERNS, k=rng.randint(1, 3)),
                    "favourite_categories": favourites,
                },
                "interests": favourites,
            }
        )
    return members


async def member_records(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> list[dict[str, Any]]:
    """Every member of the brand as the members API shows them (with ids), oldest first."""
    records: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        response = await client.get("/members/v1/members", params=params, headers=headers)
        response.raise_for_status()
        page = response.json()
        records += page["items"]
        if page["next"] is None:
            return records
        params["after"] = page["next"]
