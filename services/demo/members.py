"""The demo's member vocabulary (names, places, skin types, concerns, categories), which the
simulator draws its members from, and `member_records` to list a brand's members through the API."""

from __future__ import annotations

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
