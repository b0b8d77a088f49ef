"""Limits on what one GraphQL document may ask: depth, aliases, tokens and cost.

Depth and aliases are validation rules built once per process and added to every request's
validation, so the validation cache still hits (building them per request defeats it, see
DESIGN's field notes). The token limit is strawberry's `MaxTokensLimiter`, a parser option.
Cost needs the variables (`first: $n`), so it is computed when the operation executes: each
field with a selection costs 1, and a field's selection counts as many times as its
`first`/`last` asks for. A document over
`graphql_max_cost` is refused; otherwise its cost is charged to the member's budget for the
current minute in Redis, and reported in `extensions.cost`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from graphql.validation import ValidationContext
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

from services.gateway.errors import GatewayError
from services.kernel.settings import Settings

PAGE_ARGUMENTS = ("first", "last")


def _coded(rule: type[ASTValidationRule], code: str) -> type[ASTValidationRule]:
    """`rule`, with its errors carrying `extensions.code` like every other error here.

    strawberry's limit rules report while they are constructed, so the context's `report_error`
    is wrapped for exactly that time (rules are built one after another, never concurrently).
    """

    class Coded(rule):  # type: ignore[valid-type, misc]
        def __init__(self, context: ValidationContext) -> None:
            report = context.report_error

            def coded(error: GraphQLError) -> None:
                error.extensions = {**(error.extensions or {}), "code": code}
                report(error)

            context.report_error = coded  # type: ignore[method-assign]
            try:
                super().__init__(context)
            finally:
                context.report_error = report  # type: ignore[method-assign]

    Coded.__name__ = f"{rule.__name__}Coded"
    return Coded


def validation_rules(settings: Settings) -> list[type[ASTValidationRule]]:
    return [
        _coded(depth_validator(settings.graphql_max_depth, None, None), "QUERY_TOO_DEEP"),
        _coded(alias_validator(settings.graphql_max_aliases), "TOO_MANY_ALIASES"),
    ]


# --- Cost -------------------------------------------------------------------------------------


def _page_size(field: FieldNode, variables: Mapping[str, Any]) -> int:
    for argument in field.arguments or ():
        if argument.name.value not in PAGE_ARGUMENTS:
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return max(int(value.value), 1)
        if isinstance(value, VariableNode):
            given = variables.get(value.name.value)
            if isinstance(given, int):
                return max(given, 1)
    return 1


def selection_cost(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    seen: frozenset[str] = frozenset(),
) -> int:
    if selection_set is None:
        return 0
    cost = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.selection_set is not None:
                inner = selection_cost(selection.selection_set, fragments, variables, seen)
                cost += 1 + _page_size(selection, variables) * inner
        elif isinstance(selection, InlineFragmentNode):
            cost += selection_cost(selection.selection_set, fragments, variables, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            # Validation already refused fragment cycles; `seen` only keeps this walk finite.
            if fragment is not None and name not in seen:
                cost += selection_cost(fragment.selection_set, fragments, variables, seen | {name})
    return cost


def operation_cost(
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    return selection_cost(operation.selection_set, fragments, variables)


class CostLimit(SchemaExtension):
    """Refuses a document over the cost limit or the member's budget; reports the cost."""

    def __init__(self) -> None:
        super().__init__()
        self._report: dict[str, Any] | None = None

    async def on_execute(self) -> Any:
        context = self.execution_context.context
        document = self.execution_context.graphql_document
        settings: Settings = context.settings
        if document is None:
            yield
            return
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        name = self.execution_context.operation_name
        chosen = next(
            (o for o in operations if name is None or (o.name and o.name.value == name)), None
        )
        cost = (
            0
            if chosen is None
            else operation_cost(chosen, fragments, self.execution_context.variables or {})
        )
        context.cost = cost
        self._report = {"requested": cost, "limit": settings.graphql_max_cost}
        if cost > settings.graphql_max_cost:
            raise GatewayError(
                f"This query costs {cost}, over the limit of {settings.graphql_max_cost}: ask "
                "for fewer items with `first`, or split it into smaller queries.",
                code="QUERY_TOO_COSTLY",
                cost=cost,
                limit=settings.graphql_max_cost,
            )
        principal = context.principal
        if principal is not None and cost > 0:
            remaining, resets_in = await _charge(
                context.redis, f"{principal.brand_id}:{principal.member_id}", cost, settings
            )
            self._report["budget"] = {"remaining": max(remaining, 0), "resetsInSeconds": resets_in}
            if remaining < 0:
                raise GatewayError(
                    f"You have used this minute's query budget of "
                    f"{settings.graphql_cost_per_minute}; try again in {resets_in} s.",
                    code="COST_BUDGET_EXCEEDED",
                    retryAfterSeconds=resets_in,
                )
        yield

    def get_results(self) -> dict[str, Any]:
        return {"cost": self._report} if self._report is not None else {}


async def _charge(redis: Any, who: str, cost: int, settings: Settings) -> tuple[int, int]:
    """Adds `cost` to the member's spend this minute; (what is left, seconds to the reset)."""
    now = time.time()
    minute = int(now // 60)
    key = f"kinfolk:gateway:cost:{who}:{minute}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incrby(key, cost)
        pipe.expire(key, 120)
        spent, _ = await pipe.execute()
    return settings.graphql_cost_per_minute - int(spent), max(1, 60 - int(now % 60))
