"""How the kernel hosts, migrates and wires the recommender service."""

from __future__ import annotations

from pathlib import Path

from recommender.events import RECOMMENDER_EVENTS
from recommender.intake.consumers import INTAKE_CONSUMERS
from recommender.privacy import PRIVACY_SECTIONS
from recommender.serving.audience_endpoints import router as audience_router
from recommender.serving.endpoints import router as serving_router
from recommender.serving.tasks import SERVING_JOBS
from recommender.store.models import SCHEMA, Base
from recommender.training.endpoints import router as training_router
from recommender.training.tasks import TRAINING_JOBS
from services.kernel.module import ServiceModule
from services.kernel.privacy import privacy_router
from services.kernel.routing import Router

router = Router()
router.include_router(serving_router)
router.include_router(training_router)
router.include_router(audience_router)
router.include_router(privacy_router("recommender", PRIVACY_SECTIONS))

RECOMMENDER = ServiceModule(
    name="recommender",
    schema=SCHEMA,
    metadata=Base.metadata,
    router=router,
    migrations=Path(__file__).parent / "store" / "migrations",
    privacy_export=True,
    events=RECOMMENDER_EVENTS,
    consumers=INTAKE_CONSUMERS,
    jobs=(*TRAINING_JOBS, *SERVING_JOBS),
)
