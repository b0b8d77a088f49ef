"""The demo brand `kinfolk dev` seeds looks alive: a loyalty program with history, and a
community with groups, conversations, a prompt with answers, a challenge under way and
experiences next week with bookings, all seeded through the public API and the real consumers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from services.demo.rewards import PERKS
from services.demo.seed import ensure_demo_brand
from services.kernel.app import build_app
from services.kernel.db import Database
from services.kernel.drain import drain_events
from services.kernel.settings import Settings
from services.registry import SERVICES
from simulator import happenings, world
from simulator import redemptions as simulated_perks
from simulator.truth import read_truth
from tests.conftest import make_runtime, purge_brand


async def test_the_demo_brand_has_a_living_program_and_community(
    base_settings: Settings, engine_database: Database, redis: Redis, tmp_path: Path
) -> None:
    settings = base_settings.model_copy(update={"data_dir": tmp_path})
    runtime = make_runtime(settings, engine_database, redis)
    app = build_app(SERVICES, settings, runtime)
    demo = await ensure_demo_brand(settings, runtime, app, size=60, days=60)
    # What `kinfolk dev`'s relay and workers do while it serves.
    await drain_events(runtime, SERVICES, "test-demo")
    staff = {"Authorization": f"Bearer {demo.api_key}"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk") as client:

            async def items(path: str, **params: Any) -> list[dict[str, Any]]:
                response = await client.get(path, params={"limit": 100, **params}, headers=staff)
                assert response.status_code == 200, response.text
                found: list[dict[str, Any]] = response.json()["items"]
                return found

            async def every(path: str, **params: Any) -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = []
                query: dict[str, Any] = {"limit": 100, **params}
                while True:
                    response = await client.get(path, params=query, headers=staff)
                    assert response.status_code == 200, response.text
                    page = response.json()
                    found += page["items"]
                    if not page.get("next"):
                        return found
                    query["after"] = page["next"]

            # The program: tiers, rules (activity rules included), a campaign, a catalog.
            assert [t["name"] for t in await items("/rewards/v1/tiers")] == [
                "Insider",
                "VIB",
                "Rouge",
            ]
            activities = {r["activity"] for r in await items("/rewards/v1/rules")}
            assert {"post.approved", "prompt.answered", "experience.attended"} <= activities
            # The simulated year's seasonal weeks, and this week's.
            truth = read_truth(settings.data_dir / "simulations" / f"demo-{demo.brand_id}")
            campaigns = [c["name"] for c in await items("/rewards/v1/campaigns")]
            assert "Skincare week: double points" in campaigns
            assert len(campaigns) == 1 + len(world.campaign_windows(truth.params))
            # This week's catalog, and the perks simulated members redeem over the year (a
            # 60-day world earns too few points to; tests/simulator/test_redemptions.py).
            perks = await items("/rewards/v1/perks")
            assert len(perks) == len(PERKS) + len(simulated_perks.PERKS)

            # The community.
            groups = await items("/community/v1/groups")
            assert sorted(g["name"] for g in groups) == [
                "Curly hair",
                "Fragrance collectors",
                "Skincare nerds",
            ]
            # 60 members, of whom 24 take part this week: 10 in groups, 4 in the challenge.
            assert sum(g["member_count"] for g in groups) == 10
            # The simulated year's posts and this week's (14 posts, 15 prompt answers).
            members = world.make_members(truth.params)
            plan = world.community(truth.params, members)
            past_answers = len(happenings.plan_prompts(truth.params, members).answer_prompt)
            posts = await every("/community/v1/staff/posts", status="published")
            assert len(posts) == len(plan.post_author) + past_answers + 14 + 15
            assert sum(p["comment_count"] for p in posts) >= len(plan.comment_post)
            assert sum(p["reaction_count"] for p in posts) >= len(plan.reaction_post)
            assert any(p["kind"] == "review" for p in posts)
            prompts = {p["title"]: p for p in await every("/community/v1/prompts")}
            assert prompts["Show us your summer look"]["answer_count"] == 15
            assert len(prompts) > 1  # the simulated year's too
            [challenge] = await items("/community/v1/challenges")
            assert challenge["participant_count"] == 4
            progress = await items(f"/community/v1/challenges/{challenge['id']}/participants")
            assert any(step["count"] > 0 for p in progress for step in p["steps"])
            # Experiences next week: the brand's three, each booked, and the simulated ones.
            sessions = {s["title"]: s for s in await every("/community/v1/sessions")}
            for title in (
                "Skin prep masterclass",
                "Fragrance layering evening",
                "Curl care live Q&A",
            ):
                bookings = await items(f"/community/v1/sessions/{sessions[title]['id']}/bookings")
                assert len(bookings) > 0

            # Members have a purchase history, and content earned points through the real
            # consumers.
            author = next(p["author_id"] for p in posts if p["kind"] == "post")
            ledger = await every(f"/rewards/v1/members/{author}/ledger")
            assert any(e["reason"] == "Community post" for e in ledger)
            assert any(e["source_type"] == "purchase" for e in ledger)

        again = await ensure_demo_brand(settings, runtime, app, size=60, days=60)
        assert again == demo  # a restart reuses the recorded brand
    finally:
        await purge_brand(engine_database, demo.brand_id)
