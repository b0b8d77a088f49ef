"""A brand's screening settings: the defaults until staff set their own."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.moderation.repository import SettingsRepository
from services.community.moderation.schemas import DEFAULT_SETTINGS, SettingsBody, SettingsRead


async def current_settings(session: AsyncSession, brand_id: uuid.UUID) -> SettingsRead:
    row = await SettingsRepository(session).get(brand_id)
    if row is None:
        return SettingsRead.model_validate(DEFAULT_SETTINGS.model_dump())
    return SettingsRead.model_validate(row)


async def put_settings(
    session: AsyncSession, brand_id: uuid.UUID, payload: SettingsBody
) -> SettingsRead:
    values = payload.model_dump()
    values["classifier_threshold"] = float(values["classifier_threshold"])
    row = await SettingsRepository(session).put(brand_id, values)
    return SettingsRead.model_validate(row)
