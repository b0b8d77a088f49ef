"""Events of the community's prompts."""

from __future__ import annotations

from services.kernel.events import Event

EVENTS: tuple[type[Event], ...] = ()
