"""The automatic first pass over every post and comment, before anyone else sees it.

`screen` decides whether new content is published at once or held for review (visible to its
author only). Posts and comments call it in the transaction that writes them, before writing.
Every rule runs, so a moderator sees all the reasons content was held:

- `blocklist`: the text contains a term of the brand's blocklist (whole words, ignoring case and
  compatibility forms);
- `links` / `mentions`: a new member (trust level 0) wrote more links or @mentions than the
  brand's settings allow (default 2 each, as Discourse does);
- `duplicate`: the same body (by `body_hash`) was written within the window (default a day) by
  the same author already (default once) or by several other authors (default 2); texts shorter
  than `duplicate_min_length` ("Love it!") are never duplicates;
- `classifier`: the brand's trained classifier puts the probability that the text is spam or
  abusive above the brand's threshold (default 0.8).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import CommunityMember, ContentStatus, TrustLevel
from services.community.moderation.blocklist import brand_terms
from services.community.moderation.classifier import TextClassifier
from services.community.moderation.repository import Copies, Copy, ScreeningRepository
from services.community.moderation.rules import (
    HeldReason,
    blocklisted,
    count_links,
    count_mentions,
)
from services.community.moderation.schemas import SettingsRead
from services.community.moderation.settings import current_settings
from services.community.moderation.training import brand_classifier
from services.kernel.clock import utcnow
from services.kernel.ids import id_at


@dataclass(frozen=True, slots=True)
class Screening:
    status: ContentStatus  # PUBLISHED or HELD
    reasons: list[str] = field(default_factory=list)  # why it was held, e.g. "blocklist"


@dataclass(frozen=True, slots=True)
class ScreeningRules:
    """What the first pass reads about a brand: its settings, blocklist and classifier. Loaded
    once per write online, once per batch by the bulk loaders, judged by `verdict` either way."""

    settings: SettingsRead
    terms: list[str]
    model: TextClassifier | None


async def screening_rules(session: AsyncSession, brand_id: uuid.UUID) -> ScreeningRules:
    return ScreeningRules(
        settings=await current_settings(session, brand_id),
        terms=await brand_terms(session, brand_id),
        model=await brand_classifier(session, brand_id),
    )


def may_be_duplicate(settings: SettingsRead, text: str) -> bool:
    """Texts shorter than `duplicate_min_length` ("Love it!") are never duplicates."""
    return len(text.strip()) >= settings.duplicate_min_length


def duplicate_window(settings: SettingsRead) -> timedelta:
    return timedelta(minutes=settings.duplicate_window_minutes)


def too_many_copies(settings: SettingsRead, copies: Copies) -> bool:
    """Copies of the body within the window: by the author already, or by several others."""
    return (
        copies.by_author >= settings.duplicate_same_author
        or copies.other_authors >= settings.duplicate_other_authors
    )


class HistoricCopies:
    """Copies of bodies as of a moment, for the bulk paths that screen history: the rows already
    written in the window, then the batch's own texts as it goes."""

    def __init__(self, rows: Iterable[Copy]) -> None:
        self.by_hash: dict[str, list[Copy]] = defaultdict(list)
        for row in rows:
            self.by_hash[row.body_hash].append(row)

    def count(self, digest: str, author_id: uuid.UUID, since: datetime, until: datetime) -> Copies:
        found = [c for c in self.by_hash.get(digest, ()) if since <= c.created_at <= until]
        return Copies(
            by_author=sum(1 for c in found if c.author_id == author_id),
            other_authors=len({c.author_id for c in found if c.author_id != author_id}),
        )

    def add(self, copy: Copy) -> None:
        self.by_hash[copy.body_hash].append(copy)


async def historic_copies(
    session: AsyncSession,
    brand_id: uuid.UUID,
    settings: SettingsRead,
    candidates: Collection[str],
    first: datetime,
    last: datetime,
) -> HistoricCopies:
    """What the brand holds with these body hashes (of texts long enough to be duplicates)
    within the duplicate window before `first`, up to `last`: the start of a history batch's
    screening."""
    if not candidates:
        return HistoricCopies([])
    since = first - duplicate_window(settings)
    # The smallest UUIDv7 of content written at `since` (a millisecond earlier, all zeros).
    first_id = id_at(since - timedelta(milliseconds=1), bytes(8))
    rows = await ScreeningRepository(session).copies_between(
        brand_id, candidates, since, last, first_id
    )
    return HistoricCopies(rows)


async def _duplicate(
    session: AsyncSession,
    settings: SettingsRead,
    *,
    brand_id: uuid.UUID,
    author: CommunityMember,
    text: str,
    body_hash: str,
    content_id: uuid.UUID | None,
) -> bool:
    if not may_be_duplicate(settings, text):
        return False
    since = utcnow() - duplicate_window(settings)
    copies = await ScreeningRepository(session).copies(
        brand_id, author.member_id, body_hash, since, content_id
    )
    return too_many_copies(settings, copies)


def verdict(
    rules: ScreeningRules, author: CommunityMember, text: str, duplicate: bool
) -> Screening:
    """The first pass's decision, every rule in order, given whether the text is a duplicate
    (online: of what the database holds now; in a bulk load: as of the content's moment)."""
    settings = rules.settings
    reasons: list[HeldReason] = []
    if blocklisted(text, rules.terms):
        reasons.append(HeldReason.BLOCKLIST)
    if author.trust_level <= TrustLevel.NEW:
        if count_links(text) > settings.new_member_max_links:
            reasons.append(HeldReason.LINKS)
        if count_mentions(text) > settings.new_member_max_mentions:
            reasons.append(HeldReason.MENTIONS)
    if duplicate:
        reasons.append(HeldReason.DUPLICATE)
    if rules.model is not None and rules.model.suspicion(text) > settings.classifier_threshold:
        reasons.append(HeldReason.CLASSIFIER)
    if reasons:
        return Screening(ContentStatus.HELD, [reason.value for reason in reasons])
    return Screening(ContentStatus.PUBLISHED)


async def screen(
    session: AsyncSession,
    *,
    brand_id: uuid.UUID,
    author: CommunityMember,
    text: str,
    body_hash: str,
    content_id: uuid.UUID | None = None,
) -> Screening:
    """Publish or hold new content by `author`. `text` is everything readers will read (the
    body and alt texts); `body_hash` identifies copies of the body. When screening an edit of
    existing content, pass its id as `content_id` so it is not its own duplicate."""
    rules = await screening_rules(session, brand_id)
    duplicate = await _duplicate(
        session,
        rules.settings,
        brand_id=brand_id,
        author=author,
        text=text,
        body_hash=body_hash,
        content_id=content_id,
    )
    return verdict(rules, author, text, duplicate)
