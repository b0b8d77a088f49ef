"""Text that reaches SQL, fuzzed for injection: searches, filters and segment rules.

Every place a caller's text becomes part of a query is tried with strings built from SQL
metacharacters (quotes, `;`, `--`, comments, `%`, `_`, backslashes, NUL, non-ASCII): a fixed list
of the classics, and more made by hypothesis from the same pieces (seeded, so CI tries the same
ones every run; KINFOLK_FUZZ_SEED changes them, KINFOLK_FUZZ_EXAMPLES makes more). Each answer
is either the 200 a literal match gives - exactly the rows a Python comparison of the same text
finds, no more - or, for text PostgreSQL cannot hold (NUL), a 4xx with an error code; never a
500.

The places: the sessions' address search (ILIKE, the one pattern match over free text), tag
filters (array containment), exact filters (external ids, perk categories), the webhooks
messages' event-type families (a prefix LIKE), and segment rules over the member 360 (string
fields, tags, and trait keys that become JSON paths).
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences.schemas import normalise_tag
from services.kernel.clock import utcnow
from services.members.schemas import MAX_EXTERNAL_ID
from services.rewards.perks.schemas import MAX_CATEGORY
from tests.conftest import BrandFixture
from tests.security.conftest import EXAMPLES, SEED, deliver_events

# Stored in every searchable column below: each holds a metacharacter a broken query would
# treat as syntax (a LIKE wildcard, a quote, an escape, a comment).
TEXTS = (
    "100% natural",
    "a_b c",
    "o'brien",
    'say "hi"',
    "back\\slash",
    "semi;colon -- x",
    "日本 café",
    "plain",
)
PIECES = (
    "'",
    '"',
    ";",
    "--",
    "/*",
    "*/",
    "%",
    "_",
    "\\",
    "\\%",
    "\\_",
    "%%",
    "' OR '1'='1",
    "' OR 1=1 --",
    "'; DROP TABLE members.members; --",
    "$1",
    "::text",
    "\x00",
    "é",
    "日本",
    "\U0001f600",
    "\u202e",
)
# Letters whose lower case PostgreSQL and Python agree on whatever the database's locale: ASCII,
# letters already lower case, and scripts without case.
ALPHABET = st.sampled_from("abcABC019 .-_%'\"\\;/*éüß日本\U0001f600")
NASTY = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(ALPHABET, min_size=1, max_size=4)),
    min_size=1,
    max_size=5,
).map("".join)
# Strings hypothesis adds per place; KINFOLK_FUZZ_EXAMPLES multiplies them for a longer run.
GENERATED = 12 * EXAMPLES


def strings(name: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The classics, pieces of the stored texts (so some searches do match), and GENERATED more
    from hypothesis, for the target `name`."""
    made: list[str] = []

    @seed(zlib.crc32(f"{SEED}:{name}".encode()))
    @settings(
        max_examples=GENERATED,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(NASTY)
    def collect(text: str) -> None:
        made.append(text)

    collect()
    fragments = [t[len(t) // 2 : len(t) // 2 + 3] for t in TEXTS]
    return list(dict.fromkeys([*PIECES, *TEXTS, *fragments, *extra, *made]))


@dataclass(frozen=True)
class World:
    staff: dict[str, str]
    members: list[dict[str, Any]]  # as the members API stored them
    addresses: dict[str, str]  # session id -> address
    session_tags: dict[str, list[str]]  # session id -> its experience's tags
    categories: dict[str, str]  # perk id -> category
    message_types: list[str]  # the webhooks messages' event types


@pytest.fixture
async def world(client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture) -> World:
    staff = brand.headers

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(path, json=body, headers=staff)
        assert response.status_code in (200, 201), response.text
        found: dict[str, Any] = response.json()
        return found

    hook = {"url": "http://127.0.0.1:9/hooks", "event_types": ["member.created"]}
    await post("/webhooks/v1/endpoints", hook)
    members = [
        await post(
            "/members/v1/members",
            {
                "external_id": f"ext {text}",
                "display_name": text,
                "interests": [text],
                "traits": {"note": text},
            },
        )
        for text in TEXTS
    ]
    program = {"currency": "EUR", "points_per_unit": 1}
    assert (await client.put("/rewards/v1/program", json=program, headers=staff)).is_success
    categories = {}
    for text in TEXTS:
        perk = {"name": f"Perk {text}", "category": text, "cost_points": 10, "kind": "custom"}
        categories[(await post("/rewards/v1/perks", perk))["id"]] = text
    starts = utcnow() + timedelta(days=2)
    addresses: dict[str, str] = {}
    session_tags: dict[str, list[str]] = {}
    for index, text in enumerate(TEXTS):
        experience = await post(
            "/community/v1/experiences", {"title": "Class", "kind": "workshop", "tags": [text]}
        )
        made = await post(
            f"/community/v1/experiences/{experience['id']}/sessions",
            {
                "starts_at": (starts + timedelta(hours=index)).isoformat(),
                "ends_at": (starts + timedelta(hours=index + 1)).isoformat(),
                "time_zone": "Europe/Paris",
                "place": {"kind": "address", "address": f"{text}, Rue 9"},
                "capacity": 5,
            },
        )
        addresses[made["id"]] = made["place"]["address"]
        session_tags[made["id"]] = experience["tags"]
    await deliver_events(session)
    messages = await client.get("/webhooks/v1/messages?limit=100", headers=staff)
    assert messages.status_code == 200, messages.text
    types = [m["event_type"] for m in messages.json()["items"]]
    assert len(types) == len(TEXTS)  # every member.created became a message
    return World(staff, members, addresses, session_tags, categories, types)


Expect = Callable[[str], set[str] | None]


async def _try(
    queries: list[str],
    ask: Callable[[str], Awaitable[httpx.Response]],
    found: Callable[[httpx.Response], set[str]],
    expect: Expect,
) -> list[str]:
    """Each query's answer against `expect`: the literal matches, or None where the text is one
    the endpoint may refuse (a 4xx with an error code)."""
    problems: list[str] = []
    for query in queries:
        response = await ask(query)
        wanted = expect(query)
        if response.status_code == 200:
            if wanted is None or found(response) != wanted:
                problems.append(f"{query!r}: found {sorted(found(response))}, wanted {wanted}")
            continue
        body = response.json() if response.headers.get("content-type") == "application/json" else {}
        refused_as_data = 400 <= response.status_code < 500 and isinstance(body.get("error"), str)
        if wanted is not None or not refused_as_data:
            problems.append(f"{query!r}: {response.status_code} {response.text[:300]}")
    return problems


def _ids(response: httpx.Response) -> set[str]:
    return {item["id"] for item in response.json()["items"]}


def _holds_nul(text: str) -> bool:
    return "\x00" in text


async def test_the_address_search_matches_text_literally(
    client: httpx.AsyncClient, world: World
) -> None:
    def expect(query: str) -> set[str] | None:
        if _holds_nul(query):
            return None
        needle = query.strip().lower()  # the endpoint strips; ILIKE ignores case
        return {i for i, address in world.addresses.items() if needle in address.lower()}

    async def ask(query: str) -> httpx.Response:
        params = {"place": query, "limit": "100"}
        return await client.get("/community/v1/sessions", params=params, headers=world.staff)

    problems = await _try(strings("place"), ask, _ids, expect)
    assert problems == [], "\n".join(problems)


async def test_tag_filters_match_a_tag_exactly(client: httpx.AsyncClient, world: World) -> None:
    def expect(query: str) -> set[str] | None:
        if _holds_nul(query) or len(query) > 50:
            return None
        tag = normalise_tag(query)
        return {i for i, tags in world.session_tags.items() if tag and tag in tags}

    async def ask(query: str) -> httpx.Response:
        params = {"tag": query, "limit": "100"}
        return await client.get("/community/v1/sessions", params=params, headers=world.staff)

    problems = await _try(strings("tag"), ask, _ids, expect)
    assert problems == [], "\n".join(problems)


async def test_exact_filters_match_exactly(client: httpx.AsyncClient, world: World) -> None:
    def members_expect(query: str) -> set[str] | None:
        if _holds_nul(query) or len(query) > MAX_EXTERNAL_ID:
            return None
        return {m["id"] for m in world.members if m["external_id"] == query}

    async def members_ask(query: str) -> httpx.Response:
        params = {"external_id": query}
        return await client.get("/members/v1/members", params=params, headers=world.staff)

    external_ids = tuple(m["external_id"] for m in world.members)
    problems = await _try(strings("external_id", external_ids), members_ask, _ids, members_expect)

    def perks_expect(query: str) -> set[str] | None:
        if _holds_nul(query) or len(query) > MAX_CATEGORY:
            return None
        return {i for i, category in world.categories.items() if category == query}

    async def perks_ask(query: str) -> httpx.Response:
        params = {"category": query, "limit": "100"}
        return await client.get("/rewards/v1/perks", params=params, headers=world.staff)

    problems += await _try(strings("category"), perks_ask, _ids, perks_expect)
    assert problems == [], "\n".join(problems)


async def test_event_type_families_are_prefixes_not_patterns(
    client: httpx.AsyncClient, world: World
) -> None:
    """`member.*` is a family; `mem%.*` or `member_created` must not become LIKE patterns that
    match `member.created`. Unknown types may be refused (UnknownEventType)."""

    def matching(query: str) -> set[str]:
        if query == "*":
            return set(world.message_types)
        if query.endswith(".*"):
            return {t for t in world.message_types if t.startswith(query[:-1])}
        return {t for t in world.message_types if t == query}

    def expect(query: str) -> set[str] | None:
        # Only a family or type that names real messages must be answered; others may be refused.
        found = matching(query)
        return found or None

    async def ask(query: str) -> httpx.Response:
        params = {"event_type": query, "limit": "100"}
        return await client.get("/webhooks/v1/messages", params=params, headers=world.staff)

    def types(response: httpx.Response) -> set[str]:
        return {m["event_type"] for m in response.json()["items"]}

    tricks = ("member.*", "member.created", "mem%.*", "member_created", "_ember.*", "%.*", "*")
    queries = [q + suffix for q in strings("event_type", tricks) for suffix in ("", ".*")]
    problems: list[str] = []
    for query in dict.fromkeys(queries):
        response = await ask(query)
        if response.status_code == 200:
            # Whatever is answered is exactly what the literal reading finds.
            if types(response) != matching(query):
                problems.append(f"{query!r}: found {sorted(types(response))}")
        elif expect(query) is not None or not (400 <= response.status_code < 500):
            problems.append(f"{query!r}: {response.status_code} {response.text[:300]}")
    assert problems == [], "\n".join(problems)


async def test_segment_rules_compare_values_and_keys_literally(
    client: httpx.AsyncClient, world: World
) -> None:
    def preview_count(response: httpx.Response) -> set[str]:
        # A count, compared as a one-element set so _try can judge it.
        return {str(response.json()["count"])}

    def rule_ask(make_rule: Callable[[str], dict[str, Any]]) -> Callable[[str], Awaitable[Any]]:
        async def ask(query: str) -> httpx.Response:
            body = {"rule": make_rule(query), "purpose": "analytics"}
            return await client.post(
                "/marketing/v1/segments/preview", json=body, headers=world.staff
            )

        return ask

    def counting(predicate: Callable[[dict[str, Any], str], bool]) -> Expect:
        def expect(query: str) -> set[str] | None:
            if _holds_nul(query):
                return None
            return {str(sum(1 for m in world.members if predicate(m, query)))}

        return expect

    # Every string for one comparison of each kind (a column, a JSON path); the classics for
    # the rest, which bind their values the same way.
    queries = strings("segment")
    classics = list(PIECES)
    problems = await _try(
        queries,
        rule_ask(lambda q: {"field": "display_name", "op": "eq", "value": q}),
        preview_count,
        counting(lambda m, q: m["display_name"] == q),
    )
    problems += await _try(
        classics,
        rule_ask(lambda q: {"field": "external_id", "op": "in", "value": [q, "nobody"]}),
        preview_count,
        counting(lambda m, q: m["external_id"] == q),
    )
    problems += await _try(
        classics,
        rule_ask(lambda q: {"field": "interests", "op": "contains", "value": q}),
        preview_count,
        counting(lambda m, q: q in m["interests"]),
    )
    problems += await _try(
        classics,
        rule_ask(lambda q: {"field": "traits", "key": "note", "op": "eq", "value": q}),
        preview_count,
        counting(lambda m, q: m["traits"].get("note") == q),
    )
    # The trait's name becomes a JSON path: a name that is not a trait finds nobody.
    problems += await _try(
        [*queries, "note"],
        rule_ask(lambda q: {"field": "traits", "key": q, "op": "is_not_null"}),
        preview_count,
        counting(lambda m, q: q in m["traits"] and len(q) <= 200),
    )
    assert problems == [], "\n".join(problems)
