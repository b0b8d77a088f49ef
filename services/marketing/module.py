"""How the kernel hosts, migrates and wires the marketing service."""

from __future__ import annotations

from pathlib import Path

from services.kernel.module import ServiceModule
from services.kernel.privacy import privacy_router
from services.kernel.routing import Router
from services.marketing.audience.consumer import AUDIENCE_CONSUMER
from services.marketing.audience.endpoints import router as audience_router
from services.marketing.audience.tasks import REBUILD_JOB
from services.marketing.events import MARKETING_EVENTS
from services.marketing.exports.endpoints import router as exports_router
from services.marketing.exports.tasks import EXPORT_JOBS
from services.marketing.models import SCHEMA, Base
from services.marketing.privacy import PRIVACY_SECTIONS
from services.marketing.scores.endpoints import router as scores_router
from services.marketing.scores.tasks import SCORE_JOBS
from services.marketing.segments.endpoints import router as segments_router
from services.marketing.segments.tasks import REFRESH_JOB

router = Router()
for part in (audience_router, segments_router, scores_router, exports_router):
    router.include_router(part)
router.include_router(privacy_router("marketing", PRIVACY_SECTIONS))

MARKETING = ServiceModule(
    name="marketing",
    schema=SCHEMA,
    metadata=Base.metadata,
    router=router,
    migrations=Path(__file__).parent / "migrations",
    privacy_export=True,
    events=MARKETING_EVENTS,
    consumers=(AUDIENCE_CONSUMER,),
    jobs=(REBUILD_JOB, REFRESH_JOB, *SCORE_JOBS, *EXPORT_JOBS),
)
