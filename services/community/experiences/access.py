"""Who manages an experience: the brand's staff, or the member who hosts it. Hosting routes take
a `WritingActor` / `ReadingActor` (either may call them) and check `require_manager` against the
experience."""

from __future__ import annotations

from services.community.access import Actor
from services.community.experiences.errors import NotTheHost
from services.community.experiences.models import Experience


def hosts(actor: Actor, experience: Experience) -> bool:
    return actor.member_id is not None and experience.host_member_id == actor.member_id


def may_manage(actor: Actor, experience: Experience) -> bool:
    return actor.is_staff or hosts(actor, experience)


def require_manager(actor: Actor, experience: Experience) -> None:
    """403 `NotTheHost` unless staff or the experience's host."""
    if not may_manage(actor, experience):
        raise NotTheHost()
