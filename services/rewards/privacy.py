"""What rewards keeps on a member, for their privacy export (`kernel.privacy`): the account, every
ledger entry and lot, purchases and their returns, redemptions, drop entries, activity awards,
tier changes and birthday gifts."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select

from services.kernel.privacy import PrivacySection, owned
from services.rewards.models import SCHEMA, Base

_tables = Base.metadata.tables
_purchases = _tables[f"{SCHEMA}.purchases"]
_returns = _tables[f"{SCHEMA}.returns"]


def _returns_of(brand_id: uuid.UUID, member_id: uuid.UUID) -> Select[Any]:
    # A return names its purchase, and the purchase the member.
    return (
        select(_returns)
        .join(_purchases, _purchases.c.id == _returns.c.purchase_id)
        .where(_purchases.c.brand_id == brand_id, _purchases.c.member_id == member_id)
        .order_by(_returns.c.id)
    )


PRIVACY_SECTIONS = (
    owned("account", _tables[f"{SCHEMA}.accounts"]),
    owned("ledger_entries", _tables[f"{SCHEMA}.ledger_entries"]),
    owned("lots", _tables[f"{SCHEMA}.lots"]),
    owned("purchases", _purchases),
    PrivacySection("returns", _returns_of),
    owned("redemptions", _tables[f"{SCHEMA}.redemptions"]),
    owned("drop_entries", _tables[f"{SCHEMA}.drop_entries"]),
    owned("activity_awards", _tables[f"{SCHEMA}.activity_awards"]),
    owned("tier_changes", _tables[f"{SCHEMA}.tier_changes"]),
    owned("birthday_gifts", _tables[f"{SCHEMA}.birthday_gifts"]),
)
