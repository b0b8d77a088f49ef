"""How the kernel hosts, migrates and wires the webhooks service."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from services.kernel.module import ServiceModule
from services.webhooks.endpoints.endpoints import router as endpoints_router
from services.webhooks.messages.intake import MESSAGES_CONSUMER
from services.webhooks.models import SCHEMA, Base

router = APIRouter()
router.include_router(endpoints_router)

WEBHOOKS = ServiceModule(
    name="webhooks",
    schema=SCHEMA,
    metadata=Base.metadata,
    router=router,
    migrations=Path(__file__).parent / "migrations",
    consumers=(MESSAGES_CONSUMER,),
)
