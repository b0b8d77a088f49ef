"""What the recommender keeps on a member, for their privacy export (`kernel.privacy`): what it
knows of them, every interaction it learned from, every list it showed them (with each item's
probability of being shown), their current lists, and their posts in its catalog."""

from __future__ import annotations

from recommender.store.models import SCHEMA, Base
from services.kernel.privacy import owned

_tables = Base.metadata.tables

PRIVACY_SECTIONS = (
    owned("profile", _tables[f"{SCHEMA}.members"]),
    owned("interactions", _tables[f"{SCHEMA}.interactions"]),
    owned("exposures", _tables[f"{SCHEMA}.exposures"]),
    owned("lists", _tables[f"{SCHEMA}.recommendations"]),
    # Their posts, as the recommender keeps them to recommend to others.
    owned("items_authored", _tables[f"{SCHEMA}.items"], "author_id", "item_id"),
)
