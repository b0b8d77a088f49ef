"""Finding an experience or a session within the caller's brand (404 otherwise): the first
step of nearly every rule in this package."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.experiences.errors import ExperienceNotFound, SessionNotFound
from services.community.experiences.models import Experience, ExperienceSession
from services.community.experiences.repository import ExperienceRepository


async def get_experience(
    session: AsyncSession, brand_id: uuid.UUID, experience_id: uuid.UUID
) -> Experience:
    experience = await ExperienceRepository(session).experience(brand_id, experience_id)
    if experience is None:
        raise ExperienceNotFound(f"No experience {experience_id} in this brand.")
    return experience


async def session_and_experience(
    session: AsyncSession, brand_id: uuid.UUID, session_id: uuid.UUID, *, lock: bool = False
) -> tuple[ExperienceSession, Experience]:
    """The session and its experience; with `lock`, the session row is locked (and re-read)."""
    repository = ExperienceRepository(session)
    row = await repository.session_row(brand_id, session_id, lock=lock)
    if row is None:
        raise SessionNotFound(f"No session {session_id} in this brand.")
    experience = await repository.experience(brand_id, row.experience_id)
    assert experience is not None  # a foreign key within the brand
    return row, experience
