"""What each trust level unlocks, as Discourse does: new members can read, post and react;
links, groups and hosting come with trust earned from approved contributions."""

from __future__ import annotations

from enum import StrEnum

from services.community.models import TrustLevel


class Ability(StrEnum):
    POST_LINKS = "post_links"
    CREATE_GROUPS = "create_groups"
    HOST_EXPERIENCES = "host_experiences"


_REQUIRED: dict[Ability, int] = {
    Ability.POST_LINKS: TrustLevel.BASIC,
    Ability.CREATE_GROUPS: TrustLevel.MEMBER,
    Ability.HOST_EXPERIENCES: TrustLevel.REGULAR,
}


def required_level(ability: Ability) -> int:
    return _REQUIRED[ability]


def abilities_at(level: int) -> list[Ability]:
    return [ability for ability, needed in _REQUIRED.items() if level >= needed]
