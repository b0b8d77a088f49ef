"""One realistic example of every event, as a webhook delivers it, for the schemas and the docs.

An example is built by constructing the event's own pydantic classes, so it is valid by
construction and follows the model when a field is added. Values come from the field's type
(a UUID, a time, an enum's first member, one element in a list, optionals filled), refined by
name from the tables below so a CRM developer reads an order number where there is an order
number. The output is deterministic: the schema files and docs/webhooks.md are committed and
checked byte for byte.
"""

from __future__ import annotations

import hashlib
import types
import typing
import uuid
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError

from services.kernel.events import Event, EventData
from services.kernel.ids import id_at

EXAMPLE_TIME = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def example_uuid(name: str) -> uuid.UUID:
    """A UUIDv7 of the example's moment, its random part a hash of the name: the same field
    gets the same id in every event (one member, one perk), and ids look like real ones."""
    digest = hashlib.sha256(name.encode()).digest()
    return id_at(EXAMPLE_TIME, entropy=digest)


# A value for a field, by key: "<type>:<field>" for one event, "<family>.*:<field>" for every
# event of a family (`points.*`), or the bare field name. A nested model's fields are named by
# their path ("lines.sku"), then by their own name. A bare name's value is only used where the
# field's type accepts it ("reason" is a sentence, but an enum in `experience.cancelled`);
# a qualified key must fit, since it names exactly one field.
VALUES: dict[str, Any] = {
    # People
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "display_name": "Ada Lovelace",
    "external_id": "crm-104233",
    "birthday": date(1990, 12, 10),
    "locale": "en-IE",
    "time_zone": "Europe/Dublin",
    "traits": {"skin_type": "combination", "favourite_store": "Dublin, Grafton Street"},
    "interests": ["skincare", "fragrance"],
    "changed": ["email", "interests"],
    "granted": True,
    "source": "preference_centre",
    # Money, orders and points
    "currency": "EUR",
    "amount_minor": 4_500,
    "quantity": 1,
    "order_id": "ORD-2026-1042",
    "return_id": "RET-2026-0042",
    "sku": "SKU-LIP-0042",
    "skus": ["SKU-LIP-0042"],
    "review_sku": "SKU-LIP-0042",
    "category": "skincare",
    "points": 250,
    "points_reversed": 250,
    "available": 1_250,
    "pending": 0,
    "source_type": "purchase",
    "source_id": "ORD-2026-1042",
    "reason": "Requested by the member",
    "window_spend_minor": 52_000,
    "from_tier": "Insider",
    "to_tier": "VIB",
    "perk_name": "Travel-size Lip Treatment",
    "cost_points": 500,
    "inventory_remaining": 40,
    "per_member_limit": 1,
    "active": True,
    "position": 1,
    # Community
    "tags": ["skincare", "routine"],
    "title": "Show us your morning routine",
    "body": "Which three steps do you never skip? Share them with a photo.",
    "description": "A travel-size tube of our best-selling lip treatment.",
    "slug": "skincare-circle",
    "milestone": "anniversary:1",
    "rating": 5,
    "vote_count": 12,
    "voter_count": 12,
    "reply": "Thank you! A refillable version is planned for this autumn.",
    "seats": 1,
    "capacity": 12,
    "price_points": 200,
    "refund_points": 200,
    "bookings_cancelled": 8,
    # Marketing, recommender, webhooks
    "segment_name": "Skincare lovers",
    "version": 3,
    "segment_version": 3,
    "number": 7,
    "format": "csv",
    "mode": "full",
    "gzip": True,
    "rows": 1_840,
    "bytes": 245_760,
    "url": "https://crm.example.com/webhooks/kinfolk",
    "metrics": {"model": "ease", "ndcg@100": 0.412, "recall@20": 0.284, "recall@50": 0.431},
    "compared_to": {"ndcg@100": 0.398, "recall@20": 0.271, "recall@50": 0.419},
    # Times, around the example's moment
    "starts_at": EXAMPLE_TIME + timedelta(days=7, hours=8, minutes=30),
    "ends_at": EXAMPLE_TIME + timedelta(days=7, hours=10, minutes=30),
    "expires_at": EXAMPLE_TIME + timedelta(days=30),
    "valid_until": EXAMPLE_TIME + timedelta(days=60),
    "suspended_until": EXAMPLE_TIME + timedelta(days=7),
    "failing_since": EXAMPLE_TIME - timedelta(days=5),
    # One event, or one family
    "points.redeemed:kind": "redeem",
    "points.redeemed:points": -500,
    "points.redeemed:available": 750,
    "points.redeemed:reason": "Redeemed Travel-size Lip Treatment",
    "points.redeemed:source_type": "redemption",
    "points.redeemed:source_id": "RDM-2026-0815",
    "points.pending:bucket": "pending",
    "points.pending:available": 1_000,
    "points.pending:pending": 250,
    "points.pending:reason": "Order ORD-2026-1042: available once the return window closes",
    "points.earned:reason": "Order ORD-2026-1042: 5 pts per EUR 1",
    "points.expired:kind": "expire",
    "points.expired:points": -120,
    "points.expired:available": 1_130,
    "points.expired:reason": "Expired: points earned on 2025-03-14",
    "points.expired:source_type": "lot",
    "points.expired:source_id": str(example_uuid("lot_id")),
    "points.adjusted:kind": "adjust",
    "points.adjusted:reason": "Goodwill gesture for a delayed order",
    "points.adjusted:source_type": "staff",
    "points.adjusted:source_id": "ticket-5521",
    "points.payment_declined:points": 200,
    "points.payment_declined:available": 120,
    "points.payment_declined:source_type": "experience_booking",
    "points.payment_declined:source_id": str(example_uuid("booking_id")),
    "perk.*:points": 500,
    "perk.updated:name": "Travel-size Lip Treatment",
    "perk.updated:kind": "free_product",
    "tier.changed:reason": (
        "Spent EUR 520.00 in 2026 with order ORD-2026-1042, reaching VIB (from EUR 350.00)"
    ),
    "badge.awarded:name": "Top Reviewer",
    "group.joined:name": "Skincare Circle",
    "post.*:kind": "review",
    "post.removed:status": "removed",
    "post.removed:reason": "Off-topic",
    "comment.removed:status": "removed",
    "comment.removed:reason": "Off-topic",
    "moderation.decided:action": "remove",
    "moderation.decided:reason": "A spam link in the post",
    # A removal by staff: no suspension, and no member moderator (a group's) decided it.
    "moderation.decided:suspended_until": None,
    "moderation.decided:decided_by_member_id": None,
    "idea.*:title": "A refillable lipstick case",
    "idea.status_changed:to_status": "planned",
    # `voter_ids` lists every voter here (one), so there is no next page of them.
    "idea.status_changed:voter_count": 1,
    "idea.status_changed:voters_next": None,
    "experience.*:title": "Spring make-up masterclass",
    "experience.*:points": 200,
    "experience.session_cancelled:reason": "The host is unwell",
    "experience.waitlisted:position": 3,
    "experience.cancelled:previous_status": "confirmed",
    "experience.reviewed:rating": 5,
    "prompt.published:audience": "tiers",
    "prompt.published:starts_at": EXAMPLE_TIME,
    "prompt.published:ends_at": EXAMPLE_TIME + timedelta(days=14),
    "prompt.answered:points": 50,
    "challenge.completed:points": 100,
    "recommendation.*:metrics": {
        "model": "ease",
        "members": 18_420,
        "items": 960,
        "ndcg@100": 0.412,
        "recall@20": 0.284,
        "recall@50": 0.431,
    },
    "webhook.endpoint_disabled:reason": "failing",
}

# The envelope's subject: the first of these fields the payload has (the member the event is
# about, as the producers set it), else none.
SUBJECT_FIELDS = ("member_id", "follower_id", "author_id", "target_author_id", "host_member_id")


def _keys(event_type: str, path: str, name: str) -> list[str]:
    family = event_type.split(".", 1)[0]
    keys = [f"{event_type}:{path}", f"{family}.*:{path}"]
    return [*keys, path, name] if path != name else [*keys, name]


def _from_table(annotation: Any, event_type: str, path: str, name: str) -> tuple[bool, Any]:
    for key in _keys(event_type, path, name):
        if key not in VALUES:
            continue
        try:
            return True, TypeAdapter(annotation).validate_python(VALUES[key])
        except ValidationError:
            if ":" in key:
                raise ValueError(f"VALUES[{key!r}] does not fit {annotation}") from None
    return False, None


def _value(annotation: Any, event_type: str, path: str, name: str) -> Any:
    found, value = _from_table(annotation, event_type, path, name)
    if found:
        return value
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        filled = [a for a in arguments if a is not type(None)]
        return _value(filled[0], event_type, path, name)
    if origin is Literal:
        return arguments[0]
    if origin is typing.Annotated:
        return _value(arguments[0], event_type, path, name)
    if origin in (list, tuple, set, frozenset):
        return [_value(arguments[0], event_type, path, name)] if arguments else []
    if origin is dict or annotation is dict:
        return {}
    if annotation is AwareDatetime:  # a marker class, not a datetime subclass
        return EXAMPLE_TIME
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return _model(annotation, event_type, f"{path}.")
        if issubclass(annotation, Enum):
            return next(iter(annotation))
        if issubclass(annotation, uuid.UUID):
            return example_uuid(name)
        if issubclass(annotation, datetime):
            return EXAMPLE_TIME
        if issubclass(annotation, date):
            return EXAMPLE_TIME.date()
        if issubclass(annotation, bool):
            return False
        if issubclass(annotation, int):
            return 1
        if issubclass(annotation, float):
            return 1.0
        if issubclass(annotation, str):
            return name.replace("_", " ")
    raise TypeError(f"no example value for {path} ({annotation!r}) of {event_type}")


def _model(model: type[BaseModel], event_type: str, prefix: str = "") -> BaseModel:
    values = {
        field.alias or name: _value(field.annotation, event_type, prefix + name, name)
        for name, field in model.model_fields.items()
    }
    return model.model_validate(values)


def example_event(event: type[Event]) -> Event:
    """The event, built from its own classes with the example's values."""
    event_type = event.event_type()
    data_model = event.model_fields["data"].annotation
    if not (isinstance(data_model, type) and issubclass(data_model, EventData)):
        raise TypeError(f"{event.__name__}.data is not an EventData model")
    data = _model(data_model, event_type)
    subject = next(
        (getattr(data, name) for name in SUBJECT_FIELDS if getattr(data, name, None)), None
    )
    # `model_validate`: the concrete class fixes `type` and `version` with defaults.
    return event.model_validate(
        {
            "id": example_uuid(f"event {event_type}"),
            "brand_id": example_uuid("brand_id"),
            "subject_id": subject,
            "occurred_at": EXAMPLE_TIME,
            "data": data,
        }
    )


def example_payload(event: type[Event]) -> dict[str, Any]:
    """The example as a webhook's body carries it (`event.model_dump(mode="json")`)."""
    payload: dict[str, Any] = example_event(event).model_dump(mode="json")
    return payload
