"""The automatic first pass over every post and comment, before anyone else sees it.

`screen` decides whether new content is published at once or held for review (visible to its
author only). Posts and comments call it in the transaction that writes them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember, ContentStatus


@dataclass(frozen=True, slots=True)
class Screening:
    status: ContentStatus  # PUBLISHED or HELD
    reasons: list[str] = field(default_factory=list)  # why it was held, e.g. "blocklist:word"


async def screen(
    session: AsyncSession,
    *,
    brand_id: uuid.UUID,
    author: CommunityMember,
    text: str,
    body_hash: str,
) -> Screening:
    """Publish or hold new content by `author`. (Placeholder until moderation lands its rules:
    publishes everything.)"""
    return Screening(ContentStatus.PUBLISHED)
