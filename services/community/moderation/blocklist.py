"""A brand's blocklist: words and phrases that hold content for review. Terms are kept
normalised (see `rules.normalise_text`), so `Spam`, `SPAM` and the fullwidth `spam` are one term."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.moderation.errors import TermExists, TermNotFound
from services.community.moderation.models import BlockedTerm
from services.community.moderation.repository import BlocklistRepository
from services.community.moderation.rules import normalise_text
from services.kernel.errors import ValidationFailed
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest


async def add_term(session: AsyncSession, brand_id: uuid.UUID, term: str) -> BlockedTerm:
    normal = normalise_text(term)
    if not normal:
        raise ValidationFailed(
            [{"loc": ["body", "term"], "msg": "the term is empty", "type": "value_error"}]
        )
    added = await BlocklistRepository(session).add(brand_id, new_id(), normal)
    if added is None:
        raise TermExists(f"The blocklist already has {normal!r}.")
    return added


async def delete_term(session: AsyncSession, brand_id: uuid.UUID, term_id: uuid.UUID) -> None:
    if not await BlocklistRepository(session).delete(brand_id, term_id):
        raise TermNotFound(f"No blocklist term {term_id} in this brand.")


async def list_terms(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> Sequence[BlockedTerm]:
    return await BlocklistRepository(session).page(brand_id, page)


async def brand_terms(session: AsyncSession, brand_id: uuid.UUID) -> list[str]:
    return await BlocklistRepository(session).terms(brand_id)
