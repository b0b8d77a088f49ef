"""Every service this distribution can run, in dependency order."""

from __future__ import annotations

from recommender.module import RECOMMENDER
from services.community.module import COMMUNITY
from services.gateway.module import GATEWAY
from services.kernel.module import ServiceModule
from services.marketing.module import MARKETING
from services.members.module import MEMBERS
from services.rewards.module import REWARDS
from services.webhooks.module import WEBHOOKS

SERVICES: tuple[ServiceModule, ...] = (
    MEMBERS,
    REWARDS,
    COMMUNITY,
    RECOMMENDER,
    MARKETING,
    WEBHOOKS,
    GATEWAY,
)


def service_named(name: str) -> ServiceModule:
    for service in SERVICES:
        if service.name == name:
            return service
    known = ", ".join(s.name for s in SERVICES)
    raise LookupError(f"unknown service {name!r}; known services: {known}")
