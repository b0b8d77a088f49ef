"""The demo brand `kinfolk dev` seeds looks alive: a loyalty program with history, and a
community with groups, conversations, a prompt with answers, a challenge under way and
experiences next week with bookings, all seeded through the public API and the real consumers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from services.demo.seed import ensure_demo_brand
from services.kernel.app import build_app
from services.kernel.db import Database
from services.kernel.settings import Settings
from services.registry import SERVICES
from tests.conftest import make_runtime, purge_brand


async def test_the_demo_brand_has_a_living_program_and_community(
    base_settings: Settings, engine_database: Database, redis: Redis, tmp_path: Path
) -> None:
    settings = base_settings.model_copy(update={"data_dir": tmp_path})
    runtime = make_runtime(settings, engine_database, redis)
    app = build_app(SERVICES, settings, runtime)
    demo = await ensure_demo_brand(settings, runtime, app, size=60)
    staff = {"Authorization": f"Bearer {demo.api_key}"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk") as client:

            async def items(path: str, **params: Any) -> list[dict[str, Any]]:
                response = await client.get(path, params={"limit": 100, **params}, headers=staff)
                assert response.status_code == 200, response.text
                found: list[dict[str, Any]] = response.json()["items"]
                return found

            # The program: tiers, rules (activity rules included), a campaign, a catalog.
            assert [t["name"] for t in await items("/rewards/v1/tiers")] == [
                "Insider",
                "VIB",
                "Rouge",
            ]
            activities = {r["activity"] for r in await items("/rewards/v1/rules")}
            assert {"post.approved", "prompt.answered", "experience.attended"} <= activities
            # The simulated year's seasonal weeks, and this week's.
            campaigns = [c["name"] for c in await items("/rewards/v1/campaigns")]
            assert "Skincare week: double points" in campaigns
            assert any(name.startswith("Holiday gifting") for name in campaigns)
            assert len(await items("/rewards/v1/perks")) == 7

            # The community.
            groups = await items("/community/v1/groups")
            assert sorted(g["name"] for g in groups) == [
                "Curly hair",
                "Fragrance collectors",
                "Skincare nerds",
            ]
            # 60 members, of whom 24 take part: 10 in groups, 4 in the challenge, 14 posts.
            assert sum(g["member_count"] for g in groups) == 10
            posts = await items("/community/v1/staff/posts", status="published")
            assert len(posts) == 14 + 15  # posts and prompt answers
            assert any(p["comment_count"] > 0 for p in posts)
            assert any(p["reaction_count"] > 0 for p in posts)
            assert any(p["kind"] == "review" for p in posts)
            [prompt] = await items("/community/v1/prompts")
            assert prompt["answer_count"] == 15
            [challenge] = await items("/community/v1/challenges")
            assert challenge["participant_count"] == 4
            progress = await items(f"/community/v1/challenges/{challenge['id']}/participants")
            assert any(step["count"] > 0 for p in progress for step in p["steps"])
            sessions = await items("/community/v1/sessions")
            assert len(sessions) == 3
            booked = [await items(f"/community/v1/sessions/{s['id']}/bookings") for s in sessions]
            assert all(len(bookings) > 0 for bookings in booked)

            # Content earned points through the real consumers.
            member_id = posts[0]["author_id"]
            ledger = await items(f"/rewards/v1/members/{member_id}/ledger")
            assert any(e["reason"] in {"Community post", "Product review"} for e in ledger)

        again = await ensure_demo_brand(settings, runtime, app, size=60)
        assert again == demo  # a restart reuses the recorded brand
    finally:
        await purge_brand(engine_database, demo.brand_id)
