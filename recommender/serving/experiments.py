"""A/B arms and the stable assignment of members to them.

An experiment lists its arms, each with a share of the members and a policy:

- `popular`: the brand's non-personalised list for the member's tier (a holdout);
- `version`: the member's list computed by another model version (the trainer precomputes it
  with `assign_arm`, so serving only reads the member's row);
- the members left over (1 - the shares) are the `serving` arm: the current model.

`assign_arm` is a pure function of the experiment and the member: the trainer and every serving
process agree on it without sharing state, and a member stays in one arm for the whole test.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Policy(StrEnum):
    POPULAR = "popular"
    VERSION = "version"
    SERVING = "serving"


SERVING_ARM = "serving"  # the name of the members outside every listed arm


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    share: float
    policy: Policy
    version_id: uuid.UUID | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "share": self.share,
            "policy": self.policy.value,
            "version_id": str(self.version_id) if self.version_id is not None else None,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Arm:
        version = raw.get("version_id")
        return cls(
            name=str(raw["name"]),
            share=float(raw["share"]),
            policy=Policy(raw["policy"]),
            version_id=uuid.UUID(str(version)) if version else None,
        )


def arms_of(raw: Sequence[Mapping[str, Any]]) -> tuple[Arm, ...]:
    """The arms as stored in `Experiment.arms`."""
    return tuple(Arm.from_json(arm) for arm in raw)


def serving_arm(arms: Sequence[Arm]) -> Arm:
    """The rest of the members: served by the current model."""
    # Rounded: shares that add up to 1 leave nothing, not a float residue.
    rest = round(1.0 - math.fsum(a.share for a in arms), 12)
    return Arm(SERVING_ARM, max(0.0, rest), Policy.SERVING)


def position(experiment_id: uuid.UUID, member_id: uuid.UUID) -> float:
    """Where a member falls in [0, 1) for this experiment: uniform, independent across
    experiments (a new test reshuffles members), the same every time it is asked."""
    digest = hashlib.blake2b(experiment_id.bytes + member_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_arm(experiment_id: uuid.UUID, arms: Sequence[Arm], member_id: uuid.UUID) -> Arm:
    """The member's arm: the arms take consecutive slices of [0, 1) by their shares, in order;
    a member past the last slice is in the serving arm."""
    at = position(experiment_id, member_id)
    edge = 0.0
    for arm in arms:
        edge += arm.share
        if at < edge:
            return arm
    return serving_arm(arms)
