"""The strawberry schema object with the gateway's extensions, built once per process."""

from __future__ import annotations

from functools import partial

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)

from services.gateway.errors import MaskUnexpectedErrors
from services.gateway.ids import Node
from services.gateway.limits import CostLimit, validation_rules
from services.gateway.schema.root import Mutation, Query, Subscription
from services.kernel.settings import Settings, get_settings


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """The schema with the limits of `settings` (the process's settings by default)."""
    settings = settings or get_settings()
    # Built once: the same rule classes on every request keep the validation cache hitting.
    rules = validation_rules(settings)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Node],
        extensions=[
            # Caches first: a repeated document is parsed and validated once per process (the
            # caches live at module level, keyed by size, so every request's instance shares them).
            partial(MaxTokensLimiter, max_token_count=settings.graphql_max_tokens),
            partial(ParserCache, maxsize=1024),
            partial(AddValidationRules, rules),
            partial(ValidationCache, maxsize=1024),
            CostLimit,
            MaskUnexpectedErrors,
        ],
    )


SCHEMA = build_schema()
