"""The community's view of members: kept from member events and tier changes, whatever order
the two streams deliver them in; who may act and who may only read."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.errors import MemberNotFound, MemberSuspended, TrustLevelTooLow
from services.community.members.abilities import Ability, abilities_at
from services.community.members.projection import apply_member_event
from services.community.members.repository import CommunityMemberRepository
from services.community.members.service import active_member, known_member, require_ability
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from tests.community.conftest import MakeMember, sync_members
from tests.conftest import BrandFixture
from tests.member_events import at, created, erased, tier_changed


async def test_a_tier_change_that_arrives_before_the_member_is_kept_and_the_join_date_fixed_later(
    session: AsyncSession, brand: BrandFixture
) -> None:
    member_id = new_id()
    gold = tier_changed(brand.id, member_id, 2, "Gold")
    await apply_member_event(session, gold)
    await apply_member_event(session, created(brand.id, member_id, 1, "Ada", "ext-1"))

    member = await known_member(session, brand.id, member_id)
    assert (member.display_name, member.tier_name, member.tier_id) == (
        "Ada",
        "Gold",
        gold.data.to_tier_id,
    )
    assert member.joined_at == at(1)
    assert (member.reputation, member.trust_level, member.suspended_until) == (0, 0, None)


async def test_an_erased_member_is_unknown_to_the_community(
    session: AsyncSession, brand: BrandFixture
) -> None:
    member_id = new_id()
    await apply_member_event(session, created(brand.id, member_id, 1, "Ada", "ext-1"))
    await apply_member_event(session, erased(brand.id, member_id, 2))
    with pytest.raises(MemberNotFound):
        await known_member(session, brand.id, member_id)
    row = await CommunityMemberRepository(session).get(brand.id, member_id)
    assert row is not None
    assert (row.display_name, row.member_status) == (None, "erased")


async def test_another_brand_never_sees_the_member(
    session: AsyncSession, brand: BrandFixture, other_brand: BrandFixture
) -> None:
    member_id = new_id()
    await apply_member_event(session, created(brand.id, member_id, 1, "Ada", "ext-1"))
    # An event of another brand naming the same id changes nothing here.
    await apply_member_event(session, created(other_brand.id, member_id, 2, "Mallory", "ext-1"))
    assert (await known_member(session, brand.id, member_id)).display_name == "Ada"
    with pytest.raises(MemberNotFound):
        await known_member(session, other_brand.id, member_id)


async def test_a_suspension_stops_acting_but_not_reading_until_it_runs_out(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember
) -> None:
    ada = await make_member("ada")
    repository = CommunityMemberRepository(session)
    await repository.suspend(brand.id, ada.id, utcnow() + timedelta(days=3))
    session.expire_all()
    with pytest.raises(MemberSuspended):
        await active_member(session, brand.id, ada.id)
    assert (await known_member(session, brand.id, ada.id)).member_id == ada.id

    await repository.suspend(brand.id, ada.id, utcnow() - timedelta(seconds=1))
    session.expire_all()
    assert (await active_member(session, brand.id, ada.id)).member_id == ada.id


async def test_a_member_suspended_by_the_members_service_may_not_act(
    session: AsyncSession, client: httpx.AsyncClient, brand: BrandFixture, make_member: MakeMember
) -> None:
    ada = await make_member("ada")
    response = await client.post(f"/members/v1/members/{ada.id}/suspend", headers=brand.headers)
    assert response.status_code == 200, response.text
    await sync_members(session)
    session.expire_all()
    with pytest.raises(MemberSuspended):
        await active_member(session, brand.id, ada.id)


async def test_trust_levels_unlock_abilities_in_order(
    session: AsyncSession, brand: BrandFixture, make_member: MakeMember
) -> None:
    assert abilities_at(0) == []
    assert abilities_at(1) == [Ability.POST_LINKS]
    assert abilities_at(3) == [Ability.POST_LINKS, Ability.CREATE_GROUPS, Ability.HOST_EXPERIENCES]
    newcomer = await known_member(session, brand.id, (await make_member("new")).id)
    with pytest.raises(TrustLevelTooLow, match="host_experiences needs trust level 3"):
        require_ability(newcomer, Ability.HOST_EXPERIENCES)
    regular = await known_member(session, brand.id, (await make_member("reg", trust_level=3)).id)
    require_ability(regular, Ability.HOST_EXPERIENCES)
