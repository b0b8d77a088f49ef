"""The recommender's intake: real flows through the rewards, community and members APIs, their
outbox rows fed to the recommender's consumers, and the exact rows that land in its store.

Also: the batch handlers leave what the events one by one leave; erasure removes the member's
rows; what must not happen (an erased member's later events, birthday-free redemptions, a
waitlist place ending) writes nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.intake import weights
from recommender.intake.catalog import CATALOG_CONSUMER
from recommender.intake.consumers import INTAKE_CONSUMERS
from recommender.intake.interactions import INTERACTIONS_CONSUMER
from recommender.intake.members import MEMBERS_CONSUMER
from recommender.intake.repository import IntakeRepository, MemberInterests
from recommender.store.models import (
    INBOX,
    Exposure,
    Interaction,
    InteractionKind,
    Item,
    ItemKind,
    ItemStats,
    MemberFacts,
    Recommendation,
    Session,
)
from services.kernel.clock import utcnow
from services.kernel.events import Event
from services.kernel.ids import new_id
from services.rewards.models import Program
from services.rewards.perks import service as perks_service
from tests.community.engagement_helpers import comment, post, react
from tests.community.experience_helpers import (
    book,
    create_experience,
    create_session,
    move_session,
)
from tests.conftest import BrandFixture, MemberFixture
from tests.recommender.service_fixtures import (
    MakeMember,
    feed,
    interactions,
    make_member,
    program,
    service_events,
    store,
)
from tests.rewards.perk_helpers import create_perk, redeem
from tests.rewards.purchase_helpers import buy, give_back, line, purchase, returned

# Fixtures used by name below (pytest finds them in this module's namespace).
__all__ = ["make_member", "program"]

MEMBERS_API = "/members/v1/members"


def of(events: list[Event], event_type: str) -> list[Event]:
    return [event for event in events if event.type == event_type]


async def item(session: AsyncSession, brand_id: uuid.UUID, item_id: str) -> Item:
    found = await session.get(Item, (brand_id, item_id), populate_existing=True)
    assert found is not None, f"no item {item_id}"
    return found


async def facts(session: AsyncSession, member_id: uuid.UUID) -> MemberFacts:
    found = await session.get(MemberFacts, member_id, populate_existing=True)
    assert found is not None
    return found


async def stats(session: AsyncSession, brand_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(ItemStats.item_id, ItemStats.interactions).where(ItemStats.brand_id == brand_id)
    )
    return dict(rows.all())


# --- Flows ------------------------------------------------------------------------------------


async def rewards_flow(
    client: httpx.AsyncClient, brand: BrandFixture, ada: MemberFixture
) -> dict[str, Any]:
    """A purchase of two lines, a redemption cancelled and made again, a partial return."""
    perk = await create_perk(
        client,
        brand,
        name="Mini facial",
        description="Twenty minutes of glow",
        category="skincare",
        tags=["Spa", "glow"],
        inventory_total=5,
        per_member_limit=2,
    )
    order = purchase(
        ada,
        "o-1",
        50_000,
        lines=[line("SERUM-1", 40_000, "skincare", quantity=5), line("TOTE", 10_000)],
    )
    await buy(client, brand, order)
    first = await redeem(client, ada, perk["id"])
    assert first.status_code == 201, first.text
    cancelled = await client.post(
        f"/rewards/v1/me/redemptions/{first.json()['id']}/cancel", headers=ada.headers
    )
    assert cancelled.status_code == 200, cancelled.text
    second = await redeem(client, ada, perk["id"])
    assert second.status_code == 201, second.text
    await give_back(
        client,
        brand,
        returned("o-1", "r-1", lines=[line("SERUM-1", 8_000, "skincare", quantity=1)]),
    )
    return perk


async def community_flow(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    ada: MemberFixture,
    bea: MemberFixture,
) -> dict[str, Any]:
    """A post with a comment and reactions (one taken back), a prompt answered, an experience
    booked by both, one booking cancelled and the other checked in."""
    written = await post(client, ada, "My evening routine", tags=["skincare", "routine"])
    reply = await comment(client, bea, written["id"])
    await react(client, bea, written["id"], "love")
    await react(client, bea, written["id"], "wow")
    taken_back = await client.delete(
        f"/community/v1/posts/{written['id']}/reactions/wow", headers=bea.headers
    )
    assert taken_back.status_code in (200, 204), taken_back.text
    on_comment = await client.post(
        f"/community/v1/comments/{reply['id']}/reactions",
        json={"kind": "helpful"},
        headers=ada.headers,
    )
    assert on_comment.status_code in (200, 201), on_comment.text
    prompt = await client.post(
        "/community/v1/prompts",
        json={"title": "Show us your summer look", "body": "Sun's out", "tags": ["summer"]},
        headers=brand.headers,
    )
    assert prompt.status_code == 201, prompt.text
    answered = await client.post(
        f"/community/v1/prompts/{prompt.json()['id']}/answers",
        json={"body": "Linen and a red lip", "tags": ["summer"]},
        headers=bea.headers,
    )
    assert answered.status_code == 201, answered.text
    experience = await create_experience(client, brand.headers, tags=["skincare", "spa"])
    scheduled = await create_session(
        client, brand.headers, experience["id"], capacity=10, max_seats_per_booking=2
    )
    ada_booking = await book(client, ada, scheduled["id"], seats=2)
    bea_booking = await book(client, bea, scheduled["id"])
    assert (ada_booking.status_code, bea_booking.status_code) == (201, 201)
    cancelled = await client.post(
        f"/community/v1/bookings/{ada_booking.json()['id']}/cancel", headers=ada.headers
    )
    assert cancelled.status_code == 200, cancelled.text
    await move_session(session, scheduled["id"], utcnow() + timedelta(minutes=10))
    checked = await client.post(
        f"/community/v1/bookings/{bea_booking.json()['id']}/check-in", headers=brand.headers
    )
    assert checked.status_code == 200, checked.text
    return {
        "post": written,
        "prompt": prompt.json(),
        "answer": answered.json(),
        "experience": experience,
        "session": scheduled,
    }


# --- Interactions -----------------------------------------------------------------------------


async def test_purchases_redemptions_and_returns_become_weighted_interactions(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ada = await make_member("ada", interests=["skincare"])
    perk = await rewards_flow(client, brand, ada)
    events = await service_events(session)
    await feed(session, events)

    perk_item = f"perk:{perk['id']}"
    assert await interactions(session, brand.id) == [
        (ada.id, "product:SERUM-1", "purchase", 3.0),  # five units, capped at three
        (ada.id, "product:TOTE", "purchase", 1.0),
        (ada.id, perk_item, "redemption", 3.0),
        (ada.id, perk_item, "redemption", -3.0),  # cancelled
        (ada.id, perk_item, "redemption", 3.0),
        (ada.id, "product:SERUM-1", "return", -1.0),
    ]
    # Purchases and returns are dated when they happened, the rest by their events.
    recorded = of(events, "purchase.recorded")[0]
    times = (
        await session.scalars(
            select(Interaction.occurred_at)
            .where(Interaction.brand_id == brand.id)
            .order_by(Interaction.id)
        )
    ).all()
    assert times[0] == recorded.data.occurred_at  # type: ignore[attr-defined]
    assert times[2] == of(events, "perk.redeemed")[0].occurred_at

    serum = await item(session, brand.id, "product:SERUM-1")
    tote = await item(session, brand.id, "product:TOTE")
    assert (serum.kind, serum.title, serum.category, serum.content) == (
        ItemKind.PRODUCT,
        "SERUM-1",
        "skincare",
        "skincare",
    )
    assert (tote.kind, tote.category, tote.content, tote.active) == (
        ItemKind.PRODUCT,
        None,
        "",
        True,
    )
    assert serum.created_at == recorded.data.occurred_at  # type: ignore[attr-defined]
    # Net interactions per item: a cancellation or return takes its count back.
    assert await stats(session, brand.id) == {
        "product:SERUM-1": 0,
        "product:TOTE": 1,
        perk_item: 1,
    }

    member = await facts(session, ada.id)
    created = of(events, "member.created")[0]
    assert (member.brand_id, member.interests, member.personalised, member.erased) == (
        brand.id,
        ["skincare"],
        True,
        False,
    )
    assert member.joined_at == created.occurred_at
    # Marked for the fold-in by the first thing that marked it: here the purchase, as the
    # interactions consumer ran first.
    assert member.stale_since == recorded.data.occurred_at  # type: ignore[attr-defined]
    # 500 points earned, 100 spent, refunded, spent again, 80 reversed by the return.
    assert member.points_available == 500 - 100 + 100 - 100 - 80


async def test_the_catalog_follows_perk_changes_and_stock(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ada = await make_member("ada")
    perk = await rewards_flow(client, brand, ada)
    await feed(session, await service_events(session))
    facial = await item(session, brand.id, f"perk:{perk['id']}")
    created = of(await service_events(session), "perk.updated")[0]
    assert {
        "kind": facial.kind,
        "title": facial.title,
        "content": facial.content,
        "category": facial.category,
        "tags": facial.tags,
        "cost_points": facial.cost_points,
        "tier_ids": facial.tier_ids,
        "valid_from": facial.valid_from,
        "valid_until": facial.valid_until,
        "stock": facial.stock,
        "per_member_limit": facial.per_member_limit,
        "author_id": facial.author_id,
        "active": facial.active,
        "created_at": facial.created_at,
    } == {
        "kind": ItemKind.PERK,
        "title": "Mini facial",
        "content": "Mini facial\nTwenty minutes of glow\nskincare\nspa glow",
        "category": "skincare",
        "tags": ["spa", "glow"],
        "cost_points": 100,
        "tier_ids": [],
        "valid_from": None,
        "valid_until": None,
        "stock": 4,  # five, one redeemed, given back, redeemed again
        "per_member_limit": 2,
        "author_id": None,
        "active": True,
        "created_at": created.occurred_at,
    }

    # A change states the perk afresh; redemptions after it move the stock from there.
    until = utcnow() + timedelta(days=30)
    changed = await client.patch(
        f"/rewards/v1/perks/{perk['id']}",
        json={"inventory_total": 10, "cost_points": 150, "valid_until": until.isoformat()},
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    bea = await make_member("bea")
    await buy(client, brand, purchase(bea, "o-2", 20_000))
    assert (await redeem(client, bea, perk["id"])).status_code == 201
    await feed(session, await service_events(session))
    facial = await item(session, brand.id, f"perk:{perk['id']}")
    assert (facial.cost_points, facial.valid_until, facial.stock, facial.active) == (
        150,
        until,
        10 - 1 - 1,  # the new total less ada's and bea's units
        True,
    )
    assert facial.created_at == created.occurred_at  # first sight, kept

    deactivated = await client.patch(
        f"/rewards/v1/perks/{perk['id']}", json={"active": False}, headers=brand.headers
    )
    assert deactivated.status_code == 200
    spare = await create_perk(client, brand, name="Spare", category="gifts")
    deleted = await client.delete(f"/rewards/v1/perks/{spare['id']}", headers=brand.headers)
    assert deleted.status_code == 204
    await feed(session, await service_events(session))
    assert (await item(session, brand.id, f"perk:{perk['id']}")).active is False
    gone = await item(session, brand.id, f"perk:{spare['id']}")
    assert (gone.active, gone.stock, gone.title) == (False, None, "Spare")


async def test_posts_comments_reactions_prompts_and_experiences(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ada = await make_member("ada")
    bea = await make_member("bea")
    made = await community_flow(client, session, brand, ada, bea)
    events = await service_events(session)
    await feed(session, events)

    post_item = f"post:{made['post']['id']}"
    answer_item = f"post:{made['answer']['id']}"
    prompt_item = f"prompt:{made['prompt']['id']}"
    experience_item = f"experience:{made['experience']['id']}"
    assert await interactions(session, brand.id) == [
        (ada.id, post_item, "post", 2.0),
        (bea.id, post_item, "comment", 1.5),
        (bea.id, post_item, "reaction", 1.0),
        (bea.id, post_item, "reaction", 1.0),
        (bea.id, post_item, "reaction", -1.0),  # the wow taken back
        (ada.id, post_item, "reaction", 1.0),  # on bea's comment: still the post
        (bea.id, answer_item, "post", 2.0),
        (bea.id, prompt_item, "answer", 2.0),
        (ada.id, experience_item, "booking", 2.5),
        (bea.id, experience_item, "booking", 2.5),
        (ada.id, experience_item, "booking", -2.5),
        (bea.id, experience_item, "check_in", 3.0),
    ]
    assert await stats(session, brand.id) == {
        post_item: 1 + 1 + 1 + 1 - 1 + 1,
        answer_item: 1,
        prompt_item: 1,
        experience_item: 1 + 1 - 1 + 1,
    }

    written = await item(session, brand.id, post_item)
    assert (
        written.kind,
        written.author_id,
        written.tags,
        written.category,
        written.content,
        written.active,
    ) == (
        ItemKind.POST,
        ada.id,
        ["skincare", "routine"],
        "skincare",
        "post\nskincare routine",
        True,
    )
    prompt = await item(session, brand.id, prompt_item)
    published = of(events, "prompt.published")[0]
    assert (
        prompt.kind,
        prompt.title,
        prompt.content,
        prompt.category,
        prompt.valid_from,
        prompt.valid_until,
        prompt.active,
        prompt.created_at,
    ) == (
        ItemKind.PROMPT,
        "Show us your summer look",
        "Show us your summer look\nSun's out\nsummer",
        "summer",
        published.data.starts_at,  # type: ignore[attr-defined]
        None,
        True,
        published.occurred_at,
    )
    experience = await item(session, brand.id, experience_item)
    assert (
        experience.kind,
        experience.title,
        experience.tags,
        experience.category,
        experience.author_id,
        experience.active,
    ) == (
        ItemKind.EXPERIENCE,
        "Summer glow masterclass",
        ["skincare", "spa"],
        "skincare",
        None,
        True,
    )
    session.expire_all()
    sessions = (await session.scalars(select(Session).where(Session.brand_id == brand.id))).all()
    scheduled = of(events, "experience.session_scheduled")[0]
    assert [
        (s.session_id, s.item_id, s.starts_at, s.capacity, s.booked, s.cancelled) for s in sessions
    ] == [
        (
            uuid.UUID(made["session"]["id"]),
            experience_item,
            scheduled.data.starts_at,  # type: ignore[attr-defined]
            10,
            1,  # ada's two seats given back, bea's one
            False,
        )
    ]


async def test_reaction_taken_back_is_a_negative_row_and_a_removed_post_is_withdrawn(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    ada = await make_member("ada")
    bea = await make_member("bea")
    written = await post(client, ada, "Hello", tags=["hair"])
    await feed(session, await service_events(session))
    await react(client, bea, written["id"], "love")
    await feed(session, await service_events(session))
    removed = await client.delete(
        f"/community/v1/posts/{written['id']}/reactions/love", headers=bea.headers
    )
    assert removed.status_code in (200, 204)
    deleted = await client.delete(f"/community/v1/posts/{written['id']}", headers=ada.headers)
    assert deleted.status_code == 204
    await feed(session, await service_events(session))
    item_id = f"post:{written['id']}"
    assert await interactions(session, brand.id) == [
        (ada.id, item_id, "post", weights.weight(InteractionKind.POST)),
        (bea.id, item_id, "reaction", 1.0),
        (bea.id, item_id, "reaction", -1.0),
    ]
    assert (await item(session, brand.id, item_id)).active is False


async def test_a_prompt_changed_then_deleted(
    client: httpx.AsyncClient, session: AsyncSession, brand: BrandFixture
) -> None:
    tier_id = new_id()
    created = await client.post(
        "/community/v1/prompts",
        json={"title": "Best SPF?", "body": "Tell us", "tags": ["suncare", "summer"]},
        headers=brand.headers,
    )
    prompt_id = created.json()["id"]
    ends = utcnow() + timedelta(days=7)
    changed = await client.patch(
        f"/community/v1/prompts/{prompt_id}",
        json={
            "title": "Best SPF for city days?",
            "ends_at": ends.isoformat(),
            "audience": "tiers",
            "audience_tier_ids": [str(tier_id)],
        },
        headers=brand.headers,
    )
    assert changed.status_code == 200, changed.text
    await feed(session, await service_events(session))
    prompt = await item(session, brand.id, f"prompt:{prompt_id}")
    assert (prompt.title, prompt.valid_until, prompt.tier_ids, prompt.category, prompt.active) == (
        "Best SPF for city days?",
        ends,
        [tier_id],
        "suncare",
        True,
    )
    grouped = await client.post(
        "/community/v1/prompts",
        json={"title": "Members only", "audience": "milestone", "audience_milestone": "first_post"},
        headers=brand.headers,
    )
    assert grouped.status_code == 201, grouped.text
    deleted = await client.delete(f"/community/v1/prompts/{prompt_id}", headers=brand.headers)
    assert deleted.status_code == 204
    await feed(session, await service_events(session))
    assert (await item(session, brand.id, f"prompt:{prompt_id}")).active is False
    # A milestone's members are not known here: learned from, never served.
    assert (await item(session, brand.id, f"prompt:{grouped.json()['id']}")).active is False


# --- Member facts -----------------------------------------------------------------------------


async def test_consent_tier_and_interests(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ada = await make_member("ada", interests=["hair"])
    await feed(session, await service_events(session))
    await session.execute(
        update(MemberFacts)
        .where(MemberFacts.member_id == ada.id)
        .values(stale_since=None)  # as the fold-in leaves it
    )
    off = await client.put(
        f"{MEMBERS_API}/{ada.id}/consents/personalisation",
        json={"granted": False, "source": "app"},
        headers=brand.headers,
    )
    assert off.status_code == 200, off.text
    await feed(session, await service_events(session))
    member = await facts(session, ada.id)
    assert (member.personalised, member.stale_since) == (False, None)  # nothing to fold in

    updated = await client.patch(
        f"{MEMBERS_API}/{ada.id}", json={"interests": ["hair", "fragrance"]}, headers=brand.headers
    )
    assert updated.status_code == 200
    on = await client.put(
        f"{MEMBERS_API}/{ada.id}/consents/personalisation",
        json={"granted": True, "source": "app"},
        headers=brand.headers,
    )
    assert on.status_code == 200
    silver = await client.post(
        "/rewards/v1/tiers",
        json={"name": "Silver", "rank": 1, "threshold_minor": 10_000},
        headers=brand.headers,
    )
    assert silver.status_code == 201, silver.text
    await buy(client, brand, purchase(ada, "o-1", 20_000))
    events = await service_events(session)
    # Members' facts first: the purchase's interaction (the other consumer) then finds the
    # member already marked, and keeps the mark.
    await feed(session, events, specs=[MEMBERS_CONSUMER])
    await feed(session, events)
    member = await facts(session, ada.id)
    changed = of(events, "member.updated")[-1]
    assert (
        member.personalised,
        member.interests,
        member.tier_id,
        member.tier_name,
        member.points_available,
    ) == (True, ["hair", "fragrance"], uuid.UUID(silver.json()["id"]), "Silver", 200)
    assert member.stale_since == changed.occurred_at  # the new interests marked it first


async def test_erasure_removes_the_members_rows_and_keeps_them_out(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ada = await make_member("ada", interests=["skincare"])
    bea = await make_member("bea")
    await rewards_flow(client, brand, ada)
    written = await post(client, bea, "Hi", tags=["hair"])
    await react(client, ada, written["id"])
    await feed(session, await service_events(session))
    # What serving would have written for ada, and for the brand's non-personalised list.
    now = utcnow()
    for member_id in (ada.id, bea.id):
        session.add(
            Exposure(
                id=new_id(),
                brand_id=brand.id,
                member_id=member_id,
                surface="perks",
                item_ids=["perk:x"],
                propensities=[1.0],
                explored=[False],
                served_at=now,
            )
        )
    for member_id in (ada.id, uuid.UUID(int=0)):
        session.add(
            Recommendation(
                brand_id=brand.id,
                member_id=member_id,
                surface="perks",
                item_ids=["perk:x"],
                scores=[1.0],
                reasons=["Popular"],
                computed_at=now,
            )
        )
    await session.flush()

    erased = await client.post(f"{MEMBERS_API}/{ada.id}/erase", headers=brand.headers)
    assert erased.status_code == 200, erased.text
    await feed(session, await service_events(session))

    async def count(model: type[Any], member_id: uuid.UUID) -> int:
        return int(
            await session.scalar(
                select(func.count()).select_from(model).where(model.member_id == member_id)
            )
            or 0
        )

    assert [await count(m, ada.id) for m in (Interaction, Exposure, Recommendation)] == [0, 0, 0]
    # Everyone else's rows stay.
    assert await interactions(session, brand.id) == [(bea.id, f"post:{written['id']}", "post", 2.0)]
    assert await count(Exposure, bea.id) == 1
    assert await count(Recommendation, uuid.UUID(int=0)) == 1
    member = await facts(session, ada.id)
    assert (
        member.erased,
        member.interests,
        member.personalised,
        member.points_available,
        member.tier_id,
        member.stale_since,
    ) == (True, [], False, 0, None, None)

    # An event about ada arriving after the erasure (another stream, a retry) writes nothing.
    late = of(await service_events(session), "reaction.added")[0]
    replayed = late.model_copy(update={"id": new_id()})
    await feed(session, [replayed])
    assert await count(Interaction, ada.id) == 0
    assert (await facts(session, ada.id)).stale_since is None


# --- Batches, duplicates, wiring ---------------------------------------------------------------


async def test_batches_leave_what_one_by_one_leaves(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ada = await make_member("ada", interests=["skincare"])
    bea = await make_member("bea")
    await rewards_flow(client, brand, ada)
    await community_flow(client, session, brand, ada, bea)
    await client.patch(
        f"{MEMBERS_API}/{bea.id}", json={"interests": ["spa"]}, headers=brand.headers
    )
    await client.put(
        f"{MEMBERS_API}/{bea.id}/consents/personalisation",
        json={"granted": False, "source": "app"},
        headers=brand.headers,
    )
    await client.post(f"{MEMBERS_API}/{ada.id}/erase", headers=brand.headers)
    events = await service_events(session)
    assert len(events) > 30

    await feed(session, events)
    one_by_one = await store(session, brand.id)
    for size in (3, 7, len(events)):
        await _forget(session, brand.id)
        await feed(session, events, batch=size)
        assert await store(session, brand.id) == one_by_one, f"batches of {size}"
    # What the comparison covers.
    assert {name: len(rows) for name, rows in one_by_one.items()} == {
        "items": 7,  # two products, the perk, two posts, the prompt, the experience
        "sessions": 1,
        "interactions": 8,  # bea's only: ada's went with her erasure
        "members": 2,
        "item_stats": 7,
        "exposures": 0,
        "recommendations": 0,
    }


async def _forget(session: AsyncSession, brand_id: uuid.UUID) -> None:
    """Empty the brand's recommender store and inbox, to feed the same events again."""
    for model in (Interaction, ItemStats, Session, Item, MemberFacts):
        await session.execute(delete(model).where(model.brand_id == brand_id))
    await session.execute(delete(INBOX))


async def test_each_event_takes_effect_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_member: MakeMember,
) -> None:
    ada = await make_member("ada")
    bea = await make_member("bea")
    written = await post(client, ada, "Hello", tags=["hair"])
    await react(client, bea, written["id"])
    events = await service_events(session)
    await feed(session, events)
    await feed(session, events, batch=10)  # redelivered: the inbox has them
    await feed(session, [*events, *events], batch=10)
    item_id = f"post:{written['id']}"
    assert await interactions(session, brand.id) == [
        (ada.id, item_id, "post", 2.0),
        (bea.id, item_id, "reaction", 1.0),
    ]
    assert await stats(session, brand.id) == {item_id: 2}


async def test_birthday_gifts_and_waitlist_places_are_not_interactions(
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    program: Program,
    make_member: MakeMember,
) -> None:
    ada = await make_member("ada")
    bea = await make_member("bea", birthday=f"1990-{utcnow().month:02d}-15")
    scheduled = await create_session(client, brand.headers, capacity=1)
    assert (await book(client, ada, scheduled["id"])).status_code == 201
    waiting = await book(client, bea, scheduled["id"])
    assert waiting.json()["status"] == "waitlisted"
    left = await client.post(
        f"/community/v1/bookings/{waiting.json()['id']}/cancel", headers=bea.headers
    )
    assert left.status_code == 200, left.text
    gift = await create_perk(
        client,
        brand,
        name="Birthday candle",
        category="gifts",
        is_birthday_gift=True,
        inventory_total=3,
    )
    assert await perks_service.grant_birthday_gifts(session, utcnow()) == 1  # the daily job
    events = await service_events(session)
    assert [e.data.points for e in of(events, "perk.redeemed")] == [0]  # type: ignore[attr-defined]
    assert [
        e.data.previous_status  # type: ignore[attr-defined]
        for e in of(events, "experience.cancelled")
    ] == ["waitlisted"]
    await feed(session, events)
    experience_item = f"experience:{scheduled['experience_id']}"
    assert await interactions(session, brand.id) == [(ada.id, experience_item, "booking", 2.5)]
    session.expire_all()
    booked = await session.scalar(select(Session.booked).where(Session.brand_id == brand.id))
    assert booked == 1
    # A birthday perk is granted, never redeemed: not served; its stock still moves.
    candle = await item(session, brand.id, f"perk:{gift['id']}")
    assert (candle.active, candle.stock) == (False, 2)


def test_the_consumers_read_the_right_streams() -> None:
    assert [(c.name, sorted(c.services)) for c in INTAKE_CONSUMERS] == [
        ("recommender.interactions", ["community", "rewards"]),
        ("recommender.catalog", ["community", "rewards"]),
        ("recommender.members", ["members", "rewards"]),
    ]
    assert all(c.handle_many is not None for c in INTAKE_CONSUMERS)
    assert INTERACTIONS_CONSUMER.wants("reaction.removed")
    assert not INTERACTIONS_CONSUMER.wants("perk.updated")
    assert CATALOG_CONSUMER.wants("perk.updated")
    assert CATALOG_CONSUMER.wants("perk.redeemed")
    assert MEMBERS_CONSUMER.wants("points.adjusted")
    assert MEMBERS_CONSUMER.wants("member.erased")
    assert not MEMBERS_CONSUMER.wants("purchase.recorded")


async def test_array_values_travel_whole_whatever_their_text(
    session: AsyncSession, brand: BrandFixture
) -> None:
    """Arrays go through `unnest` as their text form: quotes, backslashes, braces, commas, the
    word NULL and empty strings come back as sent."""
    odd = ['say "hi"', "back\\slash", "{braces,comma}", "NULL", "", "crème brûlée"]
    member_id = new_id()
    await IntakeRepository(session).set_interests(
        [MemberInterests(brand.id, member_id, utcnow(), odd)], fix_joined=True
    )
    assert (await facts(session, member_id)).interests == odd
    await IntakeRepository(session).set_interests(
        [MemberInterests(brand.id, member_id, utcnow(), [])], fix_joined=False
    )
    assert (await facts(session, member_id)).interests == []
