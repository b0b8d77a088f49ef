"""Pydantic I/O of serving, feedback and experiments. Inputs refuse unknown fields."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from recommender.serving.experiments import SERVING_ARM, Arm, Policy, serving_arm
from recommender.store.models import Experiment
from services.kernel.schemas import Input

MAX_ARMS = 10


class RecommendedItem(BaseModel):
    item_id: str = Field(description='The recommender\'s id, "<kind>:<id>".')
    kind: str = Field(description="perk, prompt, experience or post")
    id: str = Field(description="The item's id in its own service (the part after the colon).")
    title: str
    category: str | None
    score: float | None = Field(description="The model's score; null for an explored item.")
    reason: str = Field(description="Why it is here, in a sentence a member can read.")
    position: int = Field(description="1 is the top of the list.")
    explored: bool = Field(
        description="Chosen by exploration (an item with little data), not by the model."
    )
    propensity: float = Field(description="The probability this item was shown in this place.")


class RecommendationList(BaseModel):
    member_id: uuid.UUID
    surface: str
    exposure_id: uuid.UUID = Field(
        description="Send it back with the member's clicks and dismissals (feedback)."
    )
    version_id: uuid.UUID | None = Field(description="The model version that made the list.")
    arm: str = Field(
        description='The A/B arm of the member ("" when no experiment runs, "serving" for '
        "members outside the experiment's arms)."
    )
    items: list[RecommendedItem]


class RecommendationLists(BaseModel):
    lists: list[RecommendationList] = Field(description="In the order asked.")


ItemId = Annotated[str, StringConstraints(min_length=3, max_length=300)]


class FeedbackCreate(Input):
    item_id: ItemId = Field(description="The `item_id` of one of the list's items.")
    action: Literal["click", "dismiss"] = Field(
        description="click: the member opened it; dismiss: not interested (never shown again)."
    )


class FeedbackRead(BaseModel):
    exposure_id: uuid.UUID
    member_id: uuid.UUID
    item_id: str
    action: Literal["click", "dismiss"]
    recorded_at: datetime


ArmName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"),
]


class ArmCreate(Input):
    name: ArmName
    share: float = Field(
        gt=0.0, le=1.0, allow_inf_nan=False, description="The share of members in this arm."
    )
    policy: Literal["popular", "version"] = Field(
        description="popular: the brand's non-personalised list for the member's tier (a "
        "holdout); version: the lists of another model version (`version_id`)."
    )
    version_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _version_matches_policy(self) -> ArmCreate:
        if self.name == SERVING_ARM:
            raise ValueError(f'"{SERVING_ARM}" names the members outside every arm; rename it')
        if self.policy == "version" and self.version_id is None:
            raise ValueError("a version arm needs a version_id")
        if self.policy == "popular" and self.version_id is not None:
            raise ValueError("a popular arm takes no version_id")
        return self

    def arm(self) -> Arm:
        return Arm(self.name, self.share, Policy(self.policy), self.version_id)


class ExperimentCreate(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    arms: list[ArmCreate] = Field(
        min_length=1,
        max_length=MAX_ARMS,
        description="The arms; their shares add up to at most 1. The other members are the "
        '"serving" arm (the current model).',
    )

    @model_validator(mode="after")
    def _arms_fit(self) -> ExperimentCreate:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must be unique")
        total = math.fsum(arm.share for arm in self.arms)
        if total > 1.0 + 1e-9:
            raise ValueError(f"the arms' shares add up to {total:g}; at most 1")
        return self


class ArmRead(BaseModel):
    name: str
    share: float
    policy: Literal["popular", "version", "serving"]
    version_id: uuid.UUID | None

    @classmethod
    def of(cls, arm: Arm) -> ArmRead:
        return cls(
            name=arm.name, share=arm.share, policy=arm.policy.value, version_id=arm.version_id
        )


class ExperimentRead(BaseModel):
    id: uuid.UUID
    name: str
    arms: list[ArmRead] = Field(description='The arms, then the "serving" arm (the rest).')
    started_at: datetime
    ended_at: datetime | None
    running: bool

    @classmethod
    def of(cls, experiment: Experiment, arms: tuple[Arm, ...]) -> ExperimentRead:
        listed = [*arms, serving_arm(arms)]
        return cls(
            id=experiment.id,
            name=experiment.name,
            arms=[ArmRead.of(arm) for arm in listed if arm.share > 0],
            started_at=experiment.started_at,
            ended_at=experiment.ended_at,
            running=experiment.ended_at is None,
        )


class ArmReport(BaseModel):
    arm: str
    policy: Literal["popular", "version", "serving"]
    share: float
    members_exposed: int = Field(description="Members shown at least one list in this arm.")
    exposures: int = Field(description="Lists served.")
    items_shown: int
    clicks: int = Field(description="Items clicked (once per item of a list).")
    dismissals: int = Field(description="Items dismissed (once per item of a list).")
    click_rate: float | None = Field(description="clicks / items_shown; null when none shown.")
    redemptions: int = Field(
        description="Redemptions of a perk that the member had been shown in this arm in the "
        "7 days before."
    )
    redemption_rate: float | None = Field(
        description="redemptions / members_exposed; null when no member was exposed."
    )


class ExperimentReport(BaseModel):
    experiment: ExperimentRead
    attribution_days: int
    arms: list[ArmReport]
