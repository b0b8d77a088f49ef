"""How the kernel hosts, migrates and wires the rewards service."""

from __future__ import annotations

from pathlib import Path

from services.kernel.module import ServiceModule
from services.kernel.privacy import privacy_router
from services.kernel.routing import Router
from services.rewards.account.endpoints import router as account_router
from services.rewards.activity.consumer import ACTIVITY_CONSUMER
from services.rewards.activity.tasks import ACTIVITY_JOBS
from services.rewards.drops.endpoints import router as drops_router
from services.rewards.drops.tasks import DRAW_DROPS_JOB
from services.rewards.earning.endpoints import router as earning_router
from services.rewards.events import REWARDS_EVENTS
from services.rewards.expiry.tasks import EXPIRY_JOBS
from services.rewards.ledger.endpoints import router as ledger_router
from services.rewards.ledger.projection import MEMBERS_PROJECTION
from services.rewards.ledger.tasks import AUDIT_LEDGER
from services.rewards.models import SCHEMA, Base
from services.rewards.payments.consumer import PAYMENTS_CONSUMER
from services.rewards.perks.endpoints import router as perks_router
from services.rewards.perks.tasks import BIRTHDAY_GIFTS_JOB
from services.rewards.privacy import PRIVACY_SECTIONS
from services.rewards.purchases.endpoints import router as purchases_router
from services.rewards.purchases.tasks import RELEASE_PENDING_PURCHASES
from services.rewards.tiers.endpoints import router as tiers_router
from services.rewards.tiers.tasks import REVIEW_TIERS

router = Router()
router.include_router(ledger_router)
router.include_router(account_router)
router.include_router(perks_router)
router.include_router(drops_router)
router.include_router(purchases_router)
router.include_router(earning_router)
router.include_router(tiers_router)
router.include_router(privacy_router("rewards", PRIVACY_SECTIONS))

REWARDS = ServiceModule(
    name="rewards",
    schema=SCHEMA,
    metadata=Base.metadata,
    router=router,
    migrations=Path(__file__).parent / "migrations",
    privacy_export=True,
    events=REWARDS_EVENTS,
    consumers=(MEMBERS_PROJECTION, ACTIVITY_CONSUMER, PAYMENTS_CONSUMER),
    jobs=(
        *EXPIRY_JOBS,
        *ACTIVITY_JOBS,
        BIRTHDAY_GIFTS_JOB,
        DRAW_DROPS_JOB,
        RELEASE_PENDING_PURCHASES,
        REVIEW_TIERS,
        AUDIT_LEDGER,
    ),
)
