"""Text rules shared by posts and comments: the normal form behind duplicate detection, and
what counts as a link (posting links needs trust)."""

from __future__ import annotations

import hashlib
import re

# A scheme-qualified URL or a bare `www.` host: what readers would follow as a link.
_LINK = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)\S", re.IGNORECASE)


def normalise(text: str) -> str:
    """Lower-case with runs of whitespace collapsed: trivially varied copies compare equal."""
    return " ".join(text.lower().split())


def body_hash(text: str) -> str:
    """sha256 of the normalised text, for duplicate-spam detection."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def has_link(text: str) -> bool:
    return _LINK.search(text) is not None
