"""How the kernel hosts, migrates and wires the members service."""

from __future__ import annotations

from pathlib import Path

from services.kernel.module import ServiceModule
from services.members.endpoints import router
from services.members.events import MEMBER_EVENTS
from services.members.models import SCHEMA, Base
from services.members.service import api_key_lookup
from services.members.tasks import MEMBER_JOBS

MEMBERS = ServiceModule(
    name="members",
    schema=SCHEMA,
    metadata=Base.metadata,
    router=router,
    migrations=Path(__file__).parent / "migrations",
    events=MEMBER_EVENTS,
    jobs=MEMBER_JOBS,
    large_body_paths=("/members/v1/members/import",),
    # Staff API keys live here, so this service checks them against its own table.
    api_key_lookup=api_key_lookup,
)
