"""Events of the community's ideas."""

from __future__ import annotations

from services.kernel.events import Event

EVENTS: tuple[type[Event], ...] = ()
