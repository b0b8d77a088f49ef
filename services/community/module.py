"""How the kernel hosts, migrates and wires the community service."""

from __future__ import annotations

from pathlib import Path

from services.community.challenges.consumer import CHALLENGES_CONSUMER
from services.community.challenges.endpoints import router as challenges_router
from services.community.events import COMMUNITY_EVENTS
from services.community.experiences.endpoints import router as experiences_router
from services.community.experiences.payments import EXPERIENCE_PAYMENTS
from services.community.experiences.tasks import EXPIRE_PAYMENTS
from services.community.groups.endpoints import router as groups_router
from services.community.ideas.endpoints import router as ideas_router
from services.community.members.projection import MEMBERS_PROJECTION
from services.community.milestones.consumer import MILESTONES_CONSUMER
from services.community.milestones.endpoints import router as milestones_router
from services.community.milestones.tasks import ANNIVERSARIES_JOB
from services.community.models import SCHEMA, Base
from services.community.moderation.endpoints import router as moderation_router
from services.community.posts.endpoints import router as posts_router
from services.community.privacy import PRIVACY_SECTIONS
from services.community.profiles.endpoints import router as profiles_router
from services.community.prompts.endpoints import router as prompts_router
from services.community.reputation.consumer import REPUTATION_CONSUMER
from services.community.reputation.endpoints import router as reputation_router
from services.community.social.endpoints import router as social_router
from services.community.testimonials.endpoints import router as testimonials_router
from services.kernel.module import ServiceModule
from services.kernel.privacy import privacy_router
from services.kernel.routing import Router

router = Router()
for part in (
    posts_router,
    social_router,
    profiles_router,
    groups_router,
    prompts_router,
    challenges_router,
    reputation_router,
    ideas_router,
    milestones_router,
    testimonials_router,
    experiences_router,
    moderation_router,
):
    router.include_router(part)
router.include_router(privacy_router("community", PRIVACY_SECTIONS))

COMMUNITY = ServiceModule(
    name="community",
    schema=SCHEMA,
    metadata=Base.metadata,
    router=router,
    migrations=Path(__file__).parent / "migrations",
    privacy_export=True,
    events=COMMUNITY_EVENTS,
    consumers=(
        MEMBERS_PROJECTION,
        MILESTONES_CONSUMER,
        EXPERIENCE_PAYMENTS,
        REPUTATION_CONSUMER,
        CHALLENGES_CONSUMER,
    ),
    jobs=(ANNIVERSARIES_JOB, EXPIRE_PAYMENTS),
)
