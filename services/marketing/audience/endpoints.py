"""REST for the member 360: read one member, rebuild the brand's projection from the journal."""

from __future__ import annotations

import uuid

from fastapi import Request, status

from services.kernel.db import SessionDep
from services.kernel.jobs import enqueue, job_queue
from services.kernel.routing import Router
from services.marketing.access import StaffRead, StaffWrite
from services.marketing.audience import service
from services.marketing.audience.schemas import Member360Read, RebuildQueued, TierStay
from services.marketing.audience.tasks import REBUILD_JOB_NAME

router = Router(prefix="/marketing/v1", tags=["marketing: member 360"])


@router.get(
    "/members/{member_id}",
    response_model=Member360Read,
    summary="A member's 360",
    responses={404: {"description": "MemberNotFound"}},
)
async def read_member(member_id: uuid.UUID, staff: StaffRead, session: SessionDep) -> Member360Read:
    """Profile, consents, tier and its history, points, spend, community activity, scores and
    the segments the member is in, as of the events marketing has consumed."""
    found = await service.member_360(session, staff.brand_id, member_id)
    history = [
        TierStay(
            tier_id=uuid.UUID(entry.ref) if entry.ref else None,
            tier=entry.category,
            since=entry.occurred_at,
            direction=(entry.data or {}).get("direction"),
        )
        for entry in found.tier_history
    ]
    return Member360Read.model_validate(
        {
            **{
                c: getattr(found.view, c)
                for c in Member360Read.model_fields
                if hasattr(found.view, c)
            },
            "tier_history": history,
            "segments": found.segments,
        }
    )


@router.post(
    "/members/rebuild",
    response_model=RebuildQueued,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Rebuild the member 360 from the journal",
)
async def rebuild(staff: StaffWrite, request: Request) -> RebuildQueued:
    """Recomputes every member of the brand from the events marketing has journaled. One
    rebuild per brand is queued at a time."""
    job_id = f"{REBUILD_JOB_NAME}:{staff.brand_id}"
    queue = job_queue(request.app.state.redis)
    await enqueue(queue, REBUILD_JOB_NAME, job_id=job_id, brand_id=str(staff.brand_id))
    return RebuildQueued(job_id=job_id)
