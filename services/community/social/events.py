"""Events of the community's social."""

from __future__ import annotations

from services.kernel.events import Event

EVENTS: tuple[type[Event], ...] = ()
