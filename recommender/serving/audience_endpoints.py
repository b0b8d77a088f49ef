"""Staff route for other services: an item's audience, the members the serving model ranks most
likely to engage with it (marketing's affinity segments ask it with the caller's key, their
scheduled refreshes and exports with a service token of the brand)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, Field

from recommender.serving import audience
from recommender.serving.access import StaffRead
from services.kernel.db import SessionDep
from services.kernel.routing import Router

router = Router(prefix="/recommender/v1", tags=["recommender"])


class AudienceRead(BaseModel):
    item_id: str
    top_share: float
    version_id: uuid.UUID | None = Field(description="The serving version; none yet: nobody.")
    members: int = Field(description="The brand's members ranked.")
    scored: int = Field(
        description="Of which ranked by the model's score (members with interactions and the "
        "personalisation consent); the others rank after them, by member id."
    )
    member_ids: list[uuid.UUID] = Field(description="The first ceil(top_share x members).")
    note: str | None = Field(description="Why nobody is picked, when the model cannot rank.")


@router.get(
    "/items/{item_id}/audience",
    response_model=AudienceRead,
    summary="The members most likely to engage with an item",
    responses={
        404: {"description": "ItemNotFound"},
        422: {"description": "InvalidShare (top_share outside (0, 1])"},
    },
)
async def item_audience(
    item_id: Annotated[str, Path(max_length=200, description="e.g. `perk:<id>`")],
    staff: StaffRead,
    session: SessionDep,
    top_share: Annotated[
        float, Query(description="The share of the brand's members to return, (0, 1].")
    ],
) -> AudienceRead:
    """The brand's members ranked by the serving model's score for the item (as fresh items
    are scored in lists when the item is newer than the model), the first `top_share` of
    them. Staff with `recommender:read`."""
    found = await audience.item_audience(session, staff.brand_id, item_id, top_share)
    return AudienceRead(
        item_id=found.item_id,
        top_share=found.top_share,
        version_id=found.version_id,
        members=found.members,
        scored=found.scored,
        member_ids=found.member_ids,
        note=found.note,
    )
