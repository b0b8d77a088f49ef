"""What webhooks keeps on a member, for their privacy export (`kernel.privacy`): the messages
about them sent (or to be sent) to the brand's endpoints, with their payloads, and each
delivery's state."""

from __future__ import annotations

from services.kernel.privacy import owned
from services.webhooks.models import SCHEMA, Base

_tables = Base.metadata.tables

PRIVACY_SECTIONS = (
    owned("messages", _tables[f"{SCHEMA}.messages"]),
    owned("deliveries", _tables[f"{SCHEMA}.deliveries"]),
)
