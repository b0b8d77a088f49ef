"""Events of the community's challenges."""

from __future__ import annotations

from services.kernel.events import Event

EVENTS: tuple[type[Event], ...] = ()
