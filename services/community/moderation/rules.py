"""The text rules of the automatic first pass, as pure functions: blocklist matching and counting
links and @mentions."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from functools import lru_cache


class HeldReason(StrEnum):
    """Why the first pass held content (kept in `held_reasons`, shown to moderators and the
    author; the blocklisted word itself is not named, so it cannot be worked around)."""

    BLOCKLIST = "blocklist"
    LINKS = "links"
    MENTIONS = "mentions"
    DUPLICATE = "duplicate"
    CLASSIFIER = "classifier"


# A scheme-qualified URL or a bare `www.` host (the posts service's definition of a link).
_LINK = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)\S+", re.IGNORECASE)
# `@name` not inside a word (so e-mail addresses are not mentions).
_MENTION = re.compile(r"(?<![\w@])@[\w.]*\w")


def normalise_text(text: str) -> str:
    """Compatibility-folded (fullwidth and styled letters become plain), case-folded, with
    runs of whitespace collapsed: how blocklist terms and texts are compared."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def count_links(text: str) -> int:
    return len(_LINK.findall(text))


def count_mentions(text: str) -> int:
    return len(_MENTION.findall(text))


@lru_cache(maxsize=256)
def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so a phrase wins over a word it starts with; whole words only.
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def blocklisted(text: str, terms: list[str]) -> bool:
    """Whether `text` contains one of the (normalised) `terms` as whole words."""
    if not terms:
        return False
    return _pattern(tuple(sorted(terms))).search(normalise_text(text)) is not None
