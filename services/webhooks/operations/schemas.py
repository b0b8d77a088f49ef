"""Messages, deliveries and attempts as the operations API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.webhooks.models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    Message,
)


class MessageRead(BaseModel):
    """A message as lists show it; `GET /messages/{id}` adds its payload and deliveries."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The event's id: the `webhook-id` of every delivery.")
    event_type: str
    member_id: uuid.UUID | None
    occurred_at: datetime
    created_at: datetime = Field(description="When webhooks took the event in.")


class DeliveryRead(BaseModel):
    message_id: uuid.UUID
    endpoint_id: uuid.UUID
    status: DeliveryStatus
    attempts: int = Field(description="Attempts of the current schedule (a resend restarts it).")
    next_attempt_at: datetime | None = Field(
        description="When it is tried next (or, being sent now, when the try times out); null "
        "unless pending."
    )
    last_attempt_at: datetime | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryRead:
        pending = delivery.status is DeliveryStatus.PENDING
        return cls(
            message_id=delivery.message_id,
            endpoint_id=delivery.endpoint_id,
            status=delivery.status,
            attempts=delivery.attempts,
            # A finished delivery keeps its last due time in the row; it means nothing now.
            next_attempt_at=delivery.next_attempt_at if pending else None,
            last_attempt_at=delivery.last_attempt_at,
        )


class MessageDetail(MessageRead):
    payload: dict[str, Any] = Field(description="The JSON body every delivery sends.")
    deliveries: list[DeliveryRead]

    @classmethod
    def of(cls, message: Message, deliveries: list[Delivery]) -> MessageDetail:
        return cls.model_validate(
            {
                **MessageRead.model_validate(message).model_dump(),
                "payload": message.payload,
                "deliveries": [DeliveryRead.of(d) for d in deliveries],
            }
        )


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: uuid.UUID
    endpoint_id: uuid.UUID
    attempted_at: datetime
    outcome: AttemptOutcome
    response_status: int | None = Field(description="Null when no answer came (see `error`).")
    response_body: str | None = Field(description="At most the first kilobyte of the answer.")
    error: str | None = Field(description="Why a try without an answer failed: timeout, ...")
    duration_ms: int
    next_attempt_at: datetime | None = Field(
        description="When this try scheduled the next; null after a success or the last try."
    )

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptRead:
        return cls.model_validate(attempt)


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(
        description="Deliveries created at or after this time that failed are tried again; "
        "at most 14 days back."
    )


class Recovered(BaseModel):
    recovered: int = Field(description="How many failed deliveries are pending again.")


class NoBody(BaseModel):
    """What a write without a body is fingerprinted by for its idempotency key: its method and
    path alone."""
