"""How the kernel hosts the gateway: a router and nothing else (it owns no tables or events)."""

from __future__ import annotations

from sqlalchemy import MetaData

from services.gateway.endpoints import router
from services.gateway.notifications.publisher import NEWS_CONSUMER
from services.kernel.module import ServiceModule

GATEWAY = ServiceModule(
    name="gateway",
    schema="gateway",
    metadata=MetaData(),
    router=router,
    migrations=None,
    # Turns events into live news on each member's channel (see `notifications`).
    live_consumers=(NEWS_CONSUMER,),
    openapi=False,
)
