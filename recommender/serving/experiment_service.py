"""A/B experiments: start one (at most one runs per brand), end it, and report each arm's click
and redemption rates. Nothing here commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncSession

from recommender.serving import service
from recommender.serving.errors import (
    ExperimentEnded,
    ExperimentNotFound,
    ExperimentRunning,
    UnknownModelVersion,
)
from recommender.serving.experiments import Arm, Policy, arms_of, serving_arm
from recommender.serving.repository import ArmCounts, ExperimentRepository
from recommender.store.models import Experiment
from recommender.training import repository as training_repository
from services.kernel.clock import utcnow
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest

ATTRIBUTION = timedelta(days=7)


async def create(
    session: AsyncSession, brand_id: uuid.UUID, name: str, arms: Sequence[Arm]
) -> Experiment:
    """Starts an experiment now. Its arms are valid already (shares, names); here: every
    `version` arm names one of the brand's model versions, and no other experiment runs."""
    repository = ExperimentRepository(session)
    wanted = [arm.version_id for arm in arms if arm.version_id is not None]
    unknown = set(wanted) - await repository.versions_of(brand_id, wanted)
    if unknown:
        raise UnknownModelVersion(
            "Not a model version of this brand: " + ", ".join(sorted(str(v) for v in unknown))
        )
    running = await repository.running(brand_id)
    if running is not None:
        raise ExperimentRunning(
            f"Experiment {running.id} ({running.name!r}) is running: end it first."
        )
    experiment = Experiment(
        id=new_id(),
        brand_id=brand_id,
        name=name,
        arms=[arm.to_json() for arm in arms],
        started_at=utcnow(),
        ended_at=None,
    )
    try:
        # A savepoint: the unique index on the running experiment refuses a concurrent start.
        async with session.begin_nested():
            await repository.add(experiment)
    except sqlalchemy.exc.IntegrityError as exc:
        raise ExperimentRunning("Another experiment started meanwhile: end it first.") from exc
    service.forget_experiment(brand_id)
    # Members of a `version` arm get their lists from that version at the next fold-ins.
    await training_repository.mark_listed_members_stale(session, experiment.started_at, brand_id)
    return experiment


async def get(session: AsyncSession, brand_id: uuid.UUID, experiment_id: uuid.UUID) -> Experiment:
    found = await ExperimentRepository(session).get(brand_id, experiment_id)
    if found is None:
        raise ExperimentNotFound()
    return found


async def page(
    session: AsyncSession, brand_id: uuid.UUID, page: PageRequest
) -> Sequence[Experiment]:
    page.forwards_only()
    return await ExperimentRepository(session).page(brand_id, page.after, page.limit)


async def end(session: AsyncSession, brand_id: uuid.UUID, experiment_id: uuid.UUID) -> Experiment:
    repository = ExperimentRepository(session)
    experiment = await repository.get(brand_id, experiment_id, lock=True)
    if experiment is None:
        raise ExperimentNotFound()
    if experiment.ended_at is not None:
        raise ExperimentEnded(f"The experiment ended at {experiment.ended_at.isoformat()}.")
    await repository.end(experiment, utcnow())
    service.forget_experiment(brand_id)
    # Everyone is the current model's again.
    await training_repository.mark_listed_members_stale(session, utcnow(), brand_id)
    return experiment


@dataclass(frozen=True, slots=True)
class ArmResult:
    arm: Arm
    counts: ArmCounts

    @property
    def click_rate(self) -> float | None:
        return self.counts.clicks / self.counts.items if self.counts.items else None

    @property
    def redemption_rate(self) -> float | None:
        members = self.counts.members
        return self.counts.redemptions / members if members else None


@dataclass(frozen=True, slots=True)
class Report:
    experiment: Experiment
    arms: list[ArmResult]


async def report(session: AsyncSession, brand_id: uuid.UUID, experiment_id: uuid.UUID) -> Report:
    """Each arm's exposures, clicks, dismissals and attributed redemptions while the experiment
    ran (until now for a running one)."""
    experiment = await get(session, brand_id, experiment_id)
    listed = arms_of(experiment.arms)
    arms = [*listed, serving_arm(listed)]
    end_at = experiment.ended_at or utcnow()
    counts = await ExperimentRepository(session).arm_counts(
        brand_id, [arm.name for arm in arms], experiment.started_at, end_at, ATTRIBUTION
    )
    empty = ArmCounts(0, 0, 0, 0, 0, 0)
    return Report(
        experiment,
        [
            ArmResult(arm, counts.get(arm.name, empty))
            for arm in arms
            if arm.share > 0 or arm.policy is not Policy.SERVING
        ],
    )
