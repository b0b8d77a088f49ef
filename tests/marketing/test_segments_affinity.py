"""Affinity conditions: marketing asks the recommender over HTTP (in process here; with the
caller's key, or from a job with a service token of the brand) for an item's audience and
combines it with the rest of the rule; without a model the condition matches nobody and says
so; without the recommender, nothing is computed."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from recommender.store.models import ItemKind
from services.kernel.app import build_app
from services.kernel.auth import ServiceTokens, StaffPrincipal
from services.kernel.clients import Peers
from services.kernel.clock import utcnow
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.marketing.exports import service as exports
from services.marketing.models import MemberView
from services.marketing.module import MARKETING
from services.marketing.segments.affinity import RecommenderAudiences
from services.marketing.segments.tasks import REFRESH_JOB
from services.members.module import MEMBERS
from tests.conftest import BrandFixture, make_runtime
from tests.marketing.segments_world import create, outbox_events, preview
from tests.marketing.test_exports import post_export
from tests.recommender.serving_fixtures import staff_headers
from tests.recommender.store_world import build_world
from tests.recommender.test_audience import ask, move, trained_world


async def _members_360(
    session: AsyncSession, brand_id: uuid.UUID, ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The recommender's members in marketing's 360, every other one French."""
    now = utcnow()
    locales = {m: "fr-FR" if i % 2 == 0 else "en-GB" for i, m in enumerate(sorted(ids))}
    await session.execute(
        insert(MemberView),
        [
            {
                "brand_id": brand_id,
                "member_id": m,
                "locale": locale,
                "refreshed_at": now,
                "joined_at": now - timedelta(days=9),
            }
            for m, locale in locales.items()
        ],
    )
    return locales


async def test_an_affinity_condition_is_the_recommenders_audience_within_the_rule(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    trained = await trained_world(session, brand.id)
    ids = [*trained.world.taste, trained.empty, trained.private]
    locales = await _members_360(session, brand.id, ids)
    perk = trained.world.of_kind(ItemKind.PERK, "makeup")[0]
    audience = [
        uuid.UUID(m) for m in (await ask(client, brand.headers, perk, 0.3)).json()["member_ids"]
    ]
    affinity = {"affinity": {"item": perk, "top_share": 0.3}}
    french = {"field": "locale", "op": "eq", "value": "fr-FR"}

    alone = (await preview(client, brand.headers, affinity)).json()
    assert alone["count"] == len(audience)
    assert alone["warnings"] == []
    both = (await preview(client, brand.headers, {"and": [affinity, french]})).json()
    expected = sorted(m for m in audience if locales[m] == "fr-FR")
    assert both["count"] == len(expected)
    assert [uuid.UUID(r["member_id"]) for r in both["sample"]] == expected[:20]
    neither = (await preview(client, brand.headers, {"not": affinity})).json()
    assert neither["count"] == len(ids) - len(audience)

    segment = await create(client, brand, {"and": [affinity, french]}, name="makeup fans")
    made = await client.post(
        f"/marketing/v1/segments/{segment['id']}/versions", headers=brand.headers
    )
    assert made.status_code == 201, made.text
    assert (made.json()["size"], made.json()["entered"]) == (len(expected), len(expected))
    entered = sorted(uuid.UUID(e["subject_id"]) for e in await outbox_events(session, brand.id))
    assert entered == expected

    # A key that may not read the recommender is refused by it, and so here.
    marketer = await staff_headers(client, brand, ["marketing:write"])
    refused = await client.get(f"/marketing/v1/segments/{segment['id']}/preview", headers=marketer)
    assert (refused.status_code, refused.json()["error"]) == (403, "AffinityNotAllowed")
    assert refused.json()["detail"]["path"] == "rule.and[0]"


async def test_without_a_model_the_condition_matches_nobody_and_the_preview_says_so(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    world = await build_world(session, members=6, now=utcnow())
    await move(session, world, brand.id)
    await _members_360(session, brand.id, list(world.taste))
    perk = world.of_kind(ItemKind.PERK)[0]
    rule = {
        "or": [
            {"field": "locale", "op": "eq", "value": "fr-FR"},
            {"affinity": {"item": perk, "top_share": 0.5}},
        ]
    }
    found = await preview(client, brand.headers, rule)
    assert found.status_code == 200, found.text
    assert found.json()["count"] == 3  # the French half; the affinity part nobody
    assert found.json()["warnings"] == [
        f"rule.or[1]: the recommender has no model to rank members for {perk} yet "
        "(The brand has no serving model yet.); the condition matches nobody."
    ]
    unknown = await preview(
        client, brand.headers, {"affinity": {"item": f"perk:{uuid.uuid4()}", "top_share": 0.5}}
    )
    assert (unknown.status_code, unknown.json()["error"]) == (422, "UnknownItem")
    assert unknown.json()["detail"]["path"] == "rule.affinity.item"


async def test_without_the_recommender_nothing_is_computed(
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
    database: Database,
    redis: Redis,
) -> None:
    """Marketing alone (the recommender neither here nor configured): a 503, nothing saved."""
    app = build_app(
        [MEMBERS, MARKETING], base_settings, make_runtime(base_settings, database, redis)
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://marketing.test") as alone:
        rule = {"affinity": {"item": "perk:1", "top_share": 0.5}}
        found = await preview(alone, brand.headers, rule)
        assert (found.status_code, found.json()["error"]) == (503, "AffinityUnavailable")
        assert "KINFOLK_RECOMMENDER_URL" in found.json()["detail"]
        segment = await create(alone, brand, rule)
        made = await alone.post(
            f"/marketing/v1/segments/{segment['id']}/versions", headers=brand.headers
        )
        assert (made.status_code, made.json()["error"]) == (503, "AffinityUnavailable")
        read = await alone.get(f"/marketing/v1/segments/{segment['id']}", headers=brand.headers)
        assert read.json()["version"] == 0
    assert await outbox_events(session, brand.id) == []


class _Recording:
    """The app, noting the `Authorization` of every call made to it."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.seen: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(dict(scope["headers"]).get(b"authorization", b"").decode())
        await self.app(scope, receive, send)


async def test_jobs_ask_with_a_service_token_of_the_brand_that_reads_the_recommender_only(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
) -> None:
    """A scheduled refresh and an export have no caller: they ask the recommender with a
    service token, and get what the caller's key would have."""
    trained = await trained_world(session, brand.id)
    await _members_360(session, brand.id, [*trained.world.taste, trained.empty, trained.private])
    perk = trained.world.of_kind(ItemKind.PERK, "makeup")[0]
    audience = sorted(
        uuid.UUID(m) for m in (await ask(client, brand.headers, perk, 0.3)).json()["member_ids"]
    )
    assert audience
    rule = {"affinity": {"item": perk, "top_share": 0.3}}
    segment = await create(client, brand, rule, name="makeup fans", refresh="hourly")
    await session.commit()
    recording = _Recording(app)
    peers = Peers(base_settings, recording, frozenset({"recommender"}))

    assert await REFRESH_JOB.function(session, now=utcnow(), peers=peers) == 1
    await session.commit()
    url = f"/marketing/v1/segments/{segment['id']}/versions/1"
    made = (await client.get(url, headers=brand.headers)).json()
    assert (made["size"], made["entered"]) == (len(audience), len(audience))
    entered = sorted(uuid.UUID(e["subject_id"]) for e in await outbox_events(session, brand.id))
    assert entered == audience

    queued = await post_export(client, brand.headers, segment_id=segment["id"], format="csv")
    assert queued.status_code == 202, queued.text
    done = await exports.run_export(
        session,
        uuid.UUID(queued.json()["id"]),
        base_settings,
        RecommenderAudiences.for_jobs(peers),
    )
    assert done is not None
    assert (done.status.value, done.version, done.rows_done) == ("completed", 2, len(audience))

    # Two calls, each with a token naming the brand and granting recommender:read alone.
    assert len(recording.seen) == 2
    assert brand.headers["Authorization"] not in recording.seen
    for authorization in recording.seen:
        scheme, _, token = authorization.partition(" ")
        assert (scheme, token[:4]) == ("Bearer", "kfs_")
        principal = ServiceTokens(base_settings).verify(token)
        assert principal == StaffPrincipal(
            brand_id=brand.id,
            key_id=principal.key_id,
            scopes=frozenset({"recommender:read"}),
            service="marketing",
        )


async def test_a_job_whose_token_the_recommender_refuses_says_which_secret_to_share(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    base_settings: Settings,
) -> None:
    rule = {"affinity": {"item": "perk:1", "top_share": 0.3}}
    segment = await create(client, brand, rule, name="fans", refresh="hourly")
    await session.commit()
    elsewhere = base_settings.model_copy(update={"service_secret": SecretStr("y" * 48)})
    with capture_logs() as logs:
        refreshed = await REFRESH_JOB.function(
            session, now=utcnow(), peers=Peers(elsewhere, app, frozenset({"recommender"}))
        )
    assert refreshed == 0
    skipped = [e for e in logs if e["event"] == "segments.refresh_skipped"]
    assert [e["segment_id"] for e in skipped] == [segment["id"]]
    assert "KINFOLK_SERVICE_SECRET" in skipped[0]["reason"]
    read = await client.get(f"/marketing/v1/segments/{segment['id']}", headers=brand.headers)
    assert read.json()["version"] == 0
    assert await outbox_events(session, brand.id) == []
