"""How the kernel hosts, migrates and wires the rewards service."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from services.kernel.module import ServiceModule
from services.rewards.events import REWARDS_EVENTS
from services.rewards.ledger.endpoints import router as ledger_router
from services.rewards.ledger.projection import MEMBERS_PROJECTION
from services.rewards.models import SCHEMA, Base

router = APIRouter()
router.include_router(ledger_router)

REWARDS = ServiceModule(
    name="rewards",
    schema=SCHEMA,
    metadata=Base.metadata,
    router=router,
    migrations=Path(__file__).parent / "migrations",
    events=REWARDS_EVENTS,
    consumers=(MEMBERS_PROJECTION,),
)
