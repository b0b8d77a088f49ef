"""The member-360 fields segments may test and exports may write: one catalog, so a rule and an
export agree on every name, its type and who may read it.

Personal data (who the member is and how to reach them) is readable only by keys that may also
read members (`members:read`): a marketing key alone gets the audience's shape, not its
addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement

from services.kernel.auth import Scope, StaffPrincipal
from services.marketing.models import MemberView


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    DATETIME = "datetime"
    UUID = "uuid"
    TAGS = "tags"  # a list of strings: `contains`
    OBJECT = "object"  # JSON: traits, tested by key


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: FieldType
    description: str
    personal: bool = False  # needs `members:read` as well

    @property
    def column(self) -> ColumnElement[Any]:
        column: ColumnElement[Any] = getattr(MemberView, self.name)
        return column


_F = FieldType
FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("member_id", _F.UUID, "The member's id."),
        Field("external_id", _F.STRING, "The brand's own id for the member.", personal=True),
        Field("email", _F.STRING, "Email address.", personal=True),
        Field("display_name", _F.STRING, "Name shown in the community.", personal=True),
        Field("birthday", _F.STRING, "Birthday, YYYY-MM-DD.", personal=True),
        Field("locale", _F.STRING, "Language and region, e.g. fr-FR."),
        Field("time_zone", _F.STRING, "IANA time zone."),
        Field("status", _F.STRING, "active, suspended or erased."),
        Field("traits", _F.OBJECT, "Profile traits (skin type, ...).", personal=True),
        Field("interests", _F.TAGS, "Interests the member chose."),
        Field("consents", _F.TAGS, "Consent purposes currently granted."),
        Field("joined_at", _F.DATETIME, "When the member joined."),
        Field("tier", _F.STRING, "Current tier's name."),
        Field("tier_id", _F.UUID, "Current tier's id."),
        Field("tier_since", _F.DATETIME, "When the member reached the current tier."),
        Field("points_available", _F.INTEGER, "Points that can be spent."),
        Field("points_pending", _F.INTEGER, "Points not yet spendable."),
        Field("points_lifetime", _F.INTEGER, "Points ever earned."),
        Field("spend_lifetime_minor", _F.INTEGER, "Net spend ever, minor units."),
        Field("spend_year_minor", _F.INTEGER, "Net spend this calendar year (UTC)."),
        Field("spend_30d_minor", _F.INTEGER, "Net spend over the last 30 days."),
        Field("spend_90d_minor", _F.INTEGER, "Net spend over the last 90 days."),
        Field("spend_365d_minor", _F.INTEGER, "Net spend over the last 365 days."),
        Field("order_count", _F.INTEGER, "Purchases ever."),
        Field("first_purchase_at", _F.DATETIME, "First purchase."),
        Field("last_purchase_at", _F.DATETIME, "Last purchase."),
        Field("categories_bought", _F.TAGS, "Product categories ever bought."),
        Field("redemptions", _F.INTEGER, "Perks redeemed (net of cancellations)."),
        Field("posts", _F.INTEGER, "Posts written."),
        Field("comments", _F.INTEGER, "Comments written."),
        Field("reactions", _F.INTEGER, "Reactions given (net of those taken back)."),
        Field("prompts_answered", _F.INTEGER, "Community prompts answered."),
        Field("experiences_attended", _F.INTEGER, "Experiences checked in to."),
        Field("last_active_at", _F.DATETIME, "Last thing the member did."),
        Field("rfm_recency", _F.INTEGER, "Recency quintile, 5 = most recent."),
        Field("rfm_frequency", _F.INTEGER, "Frequency quintile, 5 = most frequent."),
        Field("rfm_monetary", _F.INTEGER, "Monetary quintile, 5 = highest spend."),
        Field("churn_probability", _F.NUMBER, "Probability of no purchase in the next 90 days."),
    )
}


def unreadable(staff: StaffPrincipal, names: list[str]) -> list[str]:
    """The fields among `names` this key may not read."""
    may_read_personal = staff.has(Scope.MEMBERS_READ)
    return [name for name in names if FIELDS[name].personal and not may_read_personal]
