"""A brand's reference data for purchases, kept in process between requests.

A purchase needs the brand's program, tier ladder, multiplier rules and campaigns. They change
rarely (staff edits) and are read on every purchase, so each process keeps a copy per brand and
checks on every use that it is current: every change to them marks the program row in the same
transaction (`ledger.reference_changed`, `ledger.configure_program`), which gives the row a new
`ProgramVersion`, and a purchase reads that version with the account lock it takes anyway (one
statement). A copy whose version differs is reloaded, so a committed staff change is seen by the
next purchase in every process; nothing is ever served from a copy older than the version read.

A copy is labelled with the version of the program row it was loaded with, and its tiers, rules
and campaigns are read after that row: a change committed in between can only make the copy
newer than its label, which costs one extra reload when the next purchase reads the new version.

The copies are detached from any session (plain objects shared by concurrent requests) and are
never written to.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.kernel.caches import MISSING, BoundedCache
from services.rewards.earning import calculator
from services.rewards.earning.repository import EarningRepository
from services.rewards.errors import ProgramNotConfigured
from services.rewards.ledger.repository import LedgerRepository, ProgramVersion
from services.rewards.models import Program, RuleKind, Tier
from services.rewards.tiers.service import Ladder, ladder_of

# Brands whose copies one process keeps (least recently used dropped first).
CACHED_BRANDS = 1024


@dataclass(frozen=True, slots=True)
class CampaignWindow:
    starts_at: datetime  # inclusive
    ends_at: datetime  # exclusive
    campaign: calculator.LiveCampaign


@dataclass(frozen=True, slots=True)
class Reference:
    """What purchases of one brand read besides the member: as of `version`."""

    version: ProgramVersion
    program: Program
    ladder: Ladder
    rules: Mapping[tuple[RuleKind, str], Sequence[calculator.LineRule]]  # by kind and sku/category
    campaigns: Sequence[CampaignWindow]  # active ones, any window

    def rules_for(
        self, skus: Collection[str], categories: Collection[str]
    ) -> list[calculator.LineRule]:
        """The active multiplier rules that could match these skus or categories."""
        found: list[calculator.LineRule] = []
        for sku in skus:
            found += self.rules.get((RuleKind.SKU_MULTIPLIER, sku), ())
        for category in categories:
            found += self.rules.get((RuleKind.CATEGORY_MULTIPLIER, category), ())
        return found

    def campaigns_live_at(self, at: datetime) -> list[calculator.LiveCampaign]:
        """Active campaigns whose window contains `at` (start inclusive, end exclusive)."""
        return [w.campaign for w in self.campaigns if w.starts_at <= at < w.ends_at]


class ReferenceCache:
    """One process's copies, by brand; a copy is only returned for the version asked."""

    def __init__(self, size: int = CACHED_BRANDS) -> None:
        self._copies: BoundedCache[uuid.UUID, Reference] = BoundedCache(size)

    def get(self, brand_id: uuid.UUID, version: ProgramVersion) -> Reference | None:
        copy = self._copies.get(brand_id)
        if copy is MISSING or copy.version != version:
            return None
        return copy

    def put(self, brand_id: uuid.UUID, reference: Reference) -> None:
        self._copies.put(brand_id, reference)

    def clear(self) -> None:
        self._copies.clear()


CACHE = ReferenceCache()


def _not_configured() -> ProgramNotConfigured:
    return ProgramNotConfigured(
        "This brand has no loyalty program yet: configure it with PUT /rewards/v1/program."
    )


def _detached(tier: Tier) -> Tier:
    """A copy outside any session: a session's own instance may be refreshed or changed later."""
    return Tier(**{column.key: getattr(tier, column.key) for column in Tier.__table__.columns})


async def _load(session: AsyncSession, brand_id: uuid.UUID) -> Reference | None:
    snapshot = await LedgerRepository(session).program_snapshot(brand_id)
    if snapshot is None:
        return None
    program, version = snapshot
    ladder = await ladder_of(session, brand_id)
    repository = EarningRepository(session)
    rules: dict[tuple[RuleKind, str], list[calculator.LineRule]] = {}
    for rule in await repository.multiplier_rules(brand_id):
        assert rule.multiplier is not None
        key = (rule.sku if rule.kind == RuleKind.SKU_MULTIPLIER else rule.category) or ""
        rules.setdefault((rule.kind, key), []).append(
            calculator.LineRule(
                id=rule.id, name=rule.name, kind=rule.kind, key=key, multiplier=rule.multiplier
            )
        )
    campaigns = [
        CampaignWindow(
            starts_at=campaign.starts_at,
            ends_at=campaign.ends_at,
            campaign=calculator.LiveCampaign(
                id=campaign.id,
                name=campaign.name,
                audience=campaign.audience,
                tier_ids=frozenset(campaign.tier_ids),
                categories=frozenset(campaign.categories),
                multiplier=campaign.multiplier,
                bonus_points=campaign.bonus_points,
            ),
        )
        for campaign in await repository.active_campaigns(brand_id)
    ]
    return Reference(
        version=version,
        program=program,
        ladder=Ladder([_detached(tier) for tier in ladder.tiers]),
        rules=rules,
        campaigns=campaigns,
    )


async def reference_at(
    session: AsyncSession, brand_id: uuid.UUID, version: ProgramVersion | None
) -> Reference:
    """The brand's reference data as of `version`, just read in this transaction (None: the
    brand has no program); from this process's copy when it is that version."""
    if version is None:
        raise _not_configured()
    cached = CACHE.get(brand_id, version)
    if cached is not None:
        return cached
    loaded = await _load(session, brand_id)
    if loaded is None:  # the program was deleted since the version was read
        raise _not_configured()
    CACHE.put(brand_id, loaded)
    return loaded


async def current_reference(session: AsyncSession, brand_id: uuid.UUID) -> Reference:
    """The brand's reference data as it stands (one cheap query when the copy is current)."""
    version = await LedgerRepository(session).program_version(brand_id)
    return await reference_at(session, brand_id, version)
