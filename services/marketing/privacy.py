"""What marketing keeps on a member, for their privacy export (`kernel.privacy`): their member-360
row (with its scores: recency, frequency, spend and churn probability), the journal of what they
did that it built it from, and the segments they entered and left."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select

from services.kernel.privacy import PrivacySection, owned
from services.marketing.models import SCHEMA, Base

_tables = Base.metadata.tables
_memberships = _tables[f"{SCHEMA}.segment_memberships"]
_segments = _tables[f"{SCHEMA}.segments"]


def _segments_of(brand_id: uuid.UUID, member_id: uuid.UUID) -> Select[Any]:
    # A membership names its segment, and the segment the brand.
    return (
        select(_memberships, _segments.c.name.label("segment_name"))
        .join(_segments, _segments.c.id == _memberships.c.segment_id)
        .where(_segments.c.brand_id == brand_id, _memberships.c.member_id == member_id)
        .order_by(_memberships.c.id)
    )


PRIVACY_SECTIONS = (
    owned("member_360", _tables[f"{SCHEMA}.members"]),
    owned("journal", _tables[f"{SCHEMA}.journal"], "member_id", "seq"),
    PrivacySection("segments", _segments_of),
)
