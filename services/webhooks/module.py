"""How the kernel hosts, migrates and wires the webhooks service."""

from __future__ import annotations

from pathlib import Path

from services.kernel.module import ServiceModule
from services.kernel.privacy import privacy_router
from services.kernel.routing import Router
from services.webhooks.delivery.worker import DELIVERY_LOOP
from services.webhooks.endpoints.endpoints import router as endpoints_router
from services.webhooks.events import WEBHOOKS_EVENTS
from services.webhooks.messages.intake import MESSAGES_CONSUMER
from services.webhooks.models import SCHEMA, Base
from services.webhooks.operations.endpoints import router as operations_router
from services.webhooks.operations.jobs import RETENTION_JOB
from services.webhooks.privacy import PRIVACY_SECTIONS

router = Router()
router.include_router(endpoints_router)
router.include_router(operations_router)
router.include_router(privacy_router("webhooks", PRIVACY_SECTIONS))

WEBHOOKS = ServiceModule(
    name="webhooks",
    schema=SCHEMA,
    metadata=Base.metadata,
    router=router,
    migrations=Path(__file__).parent / "migrations",
    privacy_export=True,
    events=WEBHOOKS_EVENTS,
    consumers=(MESSAGES_CONSUMER,),
    jobs=(RETENTION_JOB,),
    loops=(DELIVERY_LOOP,),
)
