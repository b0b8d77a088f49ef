"""Endpoints as the REST API takes and shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

EventTypes = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=100)]],
    Field(
        min_length=1,
        max_length=100,
        description="Event types to receive: exact (`points.earned`), a family (`points.*`) "
        "or everything (`*`).",
    ),
]
HeaderName = Annotated[str, Field(min_length=1, max_length=100)]
HeaderValue = Annotated[str, Field(max_length=2_000)]
Headers = Annotated[
    dict[HeaderName, HeaderValue],
    Field(max_length=20, description="Sent with every delivery, e.g. an API key of the CRM."),
]
Url = Annotated[str, Field(min_length=8, max_length=2_000)]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: EventTypes
    description: str | None = Field(default=None, max_length=500)
    segment_id: uuid.UUID | None = Field(
        default=None, description="Only messages about members of this segment."
    )
    headers: Headers = Field(default_factory=dict)
    enabled: bool = True
    rate_limit_per_second: int | None = Field(default=None, ge=1, le=10_000)
    max_concurrency: int = Field(
        default=16, ge=1, le=100, description="Attempts in flight at once, over every worker."
    )


class EndpointUpdate(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    description: str | None = Field(default=None, max_length=500)
    segment_id: uuid.UUID | None = None
    headers: Headers | None = None
    enabled: bool | None = None
    rate_limit_per_second: int | None = Field(default=None, ge=1, le=10_000)
    max_concurrency: int | None = Field(default=None, ge=1, le=100)


class EndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    segment_id: uuid.UUID | None
    headers: dict[str, str]
    enabled: bool
    disabled_reason: str | None
    rate_limit_per_second: int | None
    max_concurrency: int
    created_at: datetime
    updated_at: datetime


class EndpointSecret(BaseModel):
    secret: str = Field(description="`whsec_` and the base64 of 32 random bytes.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then deliveries are also signed with the previous secret."
    )


class EndpointCreated(EndpointRead):
    secret: str
