"""Every event the community service publishes, gathered from its packages."""

from __future__ import annotations

from services.community.challenges.events import EVENTS as CHALLENGE_EVENTS
from services.community.experiences.events import EVENTS as EXPERIENCE_EVENTS
from services.community.groups.events import EVENTS as GROUP_EVENTS
from services.community.ideas.events import EVENTS as IDEA_EVENTS
from services.community.milestones.events import EVENTS as MILESTONE_EVENTS
from services.community.moderation.events import EVENTS as MODERATION_EVENTS
from services.community.posts.events import EVENTS as POST_EVENTS
from services.community.prompts.events import EVENTS as PROMPT_EVENTS
from services.community.reputation.events import EVENTS as REPUTATION_EVENTS
from services.community.social.events import EVENTS as SOCIAL_EVENTS
from services.community.testimonials.events import EVENTS as TESTIMONIAL_EVENTS
from services.kernel.events import Event

COMMUNITY_EVENTS: tuple[type[Event], ...] = (
    *POST_EVENTS,
    *SOCIAL_EVENTS,
    *GROUP_EVENTS,
    *PROMPT_EVENTS,
    *CHALLENGE_EVENTS,
    *REPUTATION_EVENTS,
    *IDEA_EVENTS,
    *MILESTONE_EVENTS,
    *TESTIMONIAL_EVENTS,
    *EXPERIENCE_EVENTS,
    *MODERATION_EVENTS,
)
