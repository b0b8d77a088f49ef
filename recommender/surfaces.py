"""The surfaces a member's lists are for, and the kinds of item each may show: one definition
for the lists training precomputes and the rules serving applies."""

from __future__ import annotations

from recommender.store.models import ItemKind

# Products are learned from (what members buy says what they like), never served.
SERVED_KINDS: tuple[ItemKind, ...] = (
    ItemKind.PERK,
    ItemKind.PROMPT,
    ItemKind.EXPERIENCE,
    ItemKind.POST,
)

SURFACE_KINDS: dict[str, tuple[ItemKind, ...]] = {
    "perks": (ItemKind.PERK,),
    "prompts": (ItemKind.PROMPT,),
    "experiences": (ItemKind.EXPERIENCE,),
    "posts": (ItemKind.POST,),
    "discover": SERVED_KINDS,  # weekly, across surfaces
    "new": SERVED_KINDS,  # weekly: what appeared lately
}
SURFACES: tuple[str, ...] = tuple(SURFACE_KINDS)
