"""All SQL of endpoint management."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.pagination import PageRequest, keyset
from services.webhooks.models import Attempt, Delivery, Endpoint


class EndpointRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, endpoint: Endpoint) -> Endpoint:
        self.session.add(endpoint)
        await self.session.flush()
        return endpoint

    async def get(self, brand_id: uuid.UUID, endpoint_id: uuid.UUID) -> Endpoint | None:
        return await self.session.scalar(
            select(Endpoint).where(Endpoint.brand_id == brand_id, Endpoint.id == endpoint_id)
        )

    async def page(self, brand_id: uuid.UUID, page: PageRequest) -> list[Endpoint]:
        query = keyset(select(Endpoint).where(Endpoint.brand_id == brand_id), Endpoint.id, page)
        return list((await self.session.scalars(query)).all())

    async def delete(self, endpoint: Endpoint) -> None:
        """The endpoint with its deliveries and their attempt log (messages stay: other
        endpoints may have them too, and they go when their retention ends)."""
        await self.session.execute(delete(Attempt).where(Attempt.endpoint_id == endpoint.id))
        await self.session.execute(delete(Delivery).where(Delivery.endpoint_id == endpoint.id))
        await self.session.delete(endpoint)
        await self.session.flush()
