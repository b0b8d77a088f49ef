"""REST for public profiles, read by id (members and staff)."""

from __future__ import annotations

from services.community.access import ReadingActor
from services.community.profiles import service
from services.community.profiles.schemas import ProfileRead, ProfileReads
from services.kernel.db import SessionDep
from services.kernel.pagination import Ids
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: profiles"])


@router.get(
    "/members",
    response_model=ProfileReads,
    summary="Members' public profiles by id: name, reputation, trust level, follow counts",
    responses={422: {"description": "ValidationError (no ids, more than 100, not uuids)"}},
)
async def profiles(ids: Ids, session: SessionDep, viewer: ReadingActor) -> ProfileReads:
    rows = await service.profiles(session, viewer.brand_id, ids)
    return ProfileReads(
        items=[
            ProfileRead(
                id=row.member_id,
                display_name=row.display_name,
                reputation=row.reputation,
                trust_level=row.trust_level,
                follower_count=row.follower_count,
                following_count=row.following_count,
            )
            for row in rows
        ]
    )
