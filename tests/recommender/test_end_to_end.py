"""`kinfolk dev`'s demo brand, end to end: a member who redeems makeup perks and loves makeup
posts sees makeup rise in their perk recommendations after the next fold-in, and is told why.

Everything goes through the public APIs, the relay and the real consumers, and the jobs `kinfolk
dev`'s worker runs (training, fold-in), as in tests/test_demo.py.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from recommender.training import tasks
from services.demo.seed import ensure_demo_brand, settle
from services.kernel.auth import MemberTokenCodec
from services.kernel.db import Database
from services.kernel.drain import drain_events
from services.kernel.settings import Settings
from services.registry import SERVICES
from tests.conftest import app_for, bearer, make_runtime, purge_brand

CATEGORY = "makeup"


async def test_a_member_who_turns_to_makeup_sees_makeup_perks_rise_with_the_reason(
    base_settings: Settings, engine_database: Database, redis: Redis, tmp_path: Path
) -> None:
    settings = base_settings.model_copy(update={"data_dir": tmp_path})
    runtime = make_runtime(settings, engine_database, redis)
    app = app_for(SERVICES, settings, runtime)
    demo = await ensure_demo_brand(settings, runtime, app, size=60, days=60)
    staff = bearer(demo.api_key)
    try:
        # What `kinfolk dev`'s worker does by itself: the events, a first model, the fold-in.
        assert await settle(runtime, demo.brand_id, "test-e2e") == 1

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kinfolk") as client:

            async def get(path: str, headers: dict[str, str], **params: Any) -> Any:
                response = await client.get(path, params=params, headers=headers)
                assert response.status_code == 200, (path, response.text)
                return response.json()

            perks = (await get("/rewards/v1/perks", staff, limit=100))["items"]
            category_of = {f"perk:{p['id']}": p["category"] for p in perks}
            makeup_perks = [p for p in perks if p["category"] == CATEGORY and p["active"]]
            codec = MemberTokenCodec(settings)

            async def perk_list(member_id: str) -> list[dict[str, Any]]:
                token = codec.issue(demo.brand_id, uuid.UUID(member_id), timedelta(hours=1))
                body = await get(
                    f"/recommender/v1/members/{member_id}/recommendations",
                    bearer(token),
                    surface="perks",
                    limit=10,
                )
                items: list[dict[str, Any]] = body["items"]
                return [i for i in items if not i["explored"]]

            def makeup_in_top(items: list[dict[str, Any]], n: int = 5) -> int:
                return sum(category_of.get(i["item_id"]) == CATEGORY for i in items[:n])

            def best_makeup(items: list[dict[str, Any]]) -> int:
                """The position of the first makeup perk (the list's length if none)."""
                makeup = [
                    n for n, i in enumerate(items) if category_of.get(i["item_id"]) == CATEGORY
                ]
                return min(makeup, default=len(items))

            # The member whose perks show the least makeup today.
            members = (await get("/members/v1/members", staff, limit=30))["items"]
            before = {m["id"]: await perk_list(m["id"]) for m in members}
            member_id = min(before, key=lambda m: (makeup_in_top(before[m]), m))
            token = codec.issue(demo.brand_id, uuid.UUID(member_id), timedelta(hours=1))
            assert makeup_in_top(before[member_id]) <= 1

            # They turn to makeup: redeem a makeup perk, love makeup posts.
            granted = await client.post(
                f"/rewards/v1/members/{member_id}/adjustments",
                json={"points": 5_000, "reason": "Welcome to the makeup club"},
                headers=staff,
            )
            assert granted.status_code == 201, granted.text
            redeemed = makeup_perks[0]
            redemption = await client.post(
                "/rewards/v1/me/redemptions",
                json={"perk_id": redeemed["id"]},
                headers={**bearer(token), "Idempotency-Key": "e2e-makeup-1"},
            )
            assert redemption.status_code == 201, redemption.text
            # Makeup posts, found as the app would: on the member's own "posts" list.
            posts = await get(
                f"/recommender/v1/members/{member_id}/recommendations",
                staff,
                surface="posts",
                limit=50,
            )
            makeup_posts = [p for p in posts["items"] if p["category"] == CATEGORY][:6]
            assert len(makeup_posts) >= 3
            for post in makeup_posts:
                loved = await client.post(
                    f"/community/v1/posts/{post['id']}/reactions",
                    json={"kind": "love"},
                    headers=bearer(token),
                )
                assert loved.status_code in (200, 201), loved.text

            # The relay and consumers carry it to the recommender; the next fold-in uses it.
            await drain_events(runtime, SERVICES, "test-e2e")
            async with engine_database.unit_of_work() as session:
                assert await tasks.fold_in(session) >= 1

            after = await perk_list(member_id)
        # Makeup rises: more of it in the top five, and the best of it near the top (serving
        # keeps two items of a category apart, so a top five holds at most three of one).
        assert makeup_in_top(after) > makeup_in_top(before[member_id])
        assert best_makeup(after) <= 2
        assert best_makeup(after) < best_makeup(before[member_id])
        assert f"perk:{redeemed['id']}" not in {i["item_id"] for i in after}
        makeup = [i for i in after[:5] if category_of.get(i["item_id"]) == CATEGORY]
        # "Because you redeemed “Lip and liner duo”", "… loved a post about makeup", or
        # "You often choose makeup".
        assert any(
            redeemed["name"] in i["reason"] or CATEGORY in i["reason"].casefold() for i in makeup
        ), [i["reason"] for i in makeup]
    finally:
        await purge_brand(engine_database, demo.brand_id)
