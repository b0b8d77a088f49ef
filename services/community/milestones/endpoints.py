"""REST for the community's milestones: a member's own, and the prompts staff make of them."""

from __future__ import annotations

from services.community.access import ReadingMember, StaffWrite
from services.community.milestones import service
from services.community.milestones.schemas import MilestonePromptCreate, MilestoneRead
from services.community.prompts.schemas import PromptRead
from services.kernel.db import SessionDep
from services.kernel.pagination import Page, PageDep
from services.kernel.routing import Router

router = Router(prefix="/community/v1", tags=["community: milestones"])


@router.get(
    "/me/milestones",
    response_model=Page[MilestoneRead],
    summary="My milestones, newest first",
    responses={404: {"description": "MemberNotFound"}},
)
async def my_milestones(
    session: SessionDep, me: ReadingMember, page: PageDep
) -> Page[MilestoneRead]:
    rows = await service.my_milestones(session, me.brand_id, me.member_id, page)
    return Page[MilestoneRead].of(rows, page, key=lambda r: r.id, item=MilestoneRead.model_validate)


@router.post(
    "/milestone-prompts",
    status_code=201,
    response_model=PromptRead,
    summary="Make a prompt for the members who reached a milestone (staff)",
    responses={422: {"description": "ValidationError, UnknownMilestone"}},
)
async def create_milestone_prompt(
    payload: MilestonePromptCreate, session: SessionDep, staff: StaffWrite
) -> PromptRead:
    return PromptRead.model_validate(await service.create_prompt(session, staff.brand_id, payload))
