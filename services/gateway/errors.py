"""GraphQL errors the gateway means to send, and the masking of every other one.

A query that goes wrong in a way the caller can fix raises a `GatewayError` (a typed error with an
`extensions.code`); a mutation returns `userErrors` instead. Anything else is a bug: its message
and trace are logged under an error id, and the caller sees only "Unexpected error" and that id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import strawberry
import structlog
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult

log = structlog.get_logger(__name__)


class GatewayError(GraphQLError):
    """An expected error: its message says what to fix and `extensions.code` is stable."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, code: str | None = None, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": code or self.code, **extensions})


class NotAuthenticated(GatewayError):
    code = "UNAUTHENTICATED"


class Forbidden(GatewayError):
    code = "FORBIDDEN"


class NotFound(GatewayError):
    code = "NOT_FOUND"


class BadUserInput(GatewayError):
    code = "BAD_USER_INPUT"


class UpstreamUnavailable(GatewayError):
    code = "SERVICE_UNAVAILABLE"


@strawberry.type(description="Something the member can fix, found while running a mutation.")
class UserError:
    field: list[str] | None = strawberry.field(
        description="The path to the input field at fault, or null when no one field is."
    )
    code: str = strawberry.field(description="A stable code, e.g. OutOfStock, NotFound.")
    message: str = strawberry.field(description="What went wrong and how to fix it.")


def _is_expected(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None:
        # Parse and validation errors, and the limits' own errors: the caller's to fix.
        return True
    # Our typed errors, and graphql-core's own about the variables (a missing input field).
    return isinstance(original, GraphQLError)


def _document_error_code(error: GraphQLError) -> str:
    """The code of an error graphql-core raised about the document itself."""
    if error.message.startswith("Syntax Error"):
        if "tokens" in error.message:
            return "TOO_MANY_TOKENS"
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable '$"):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


def _add_document_code(error: GraphQLError) -> None:
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": _document_error_code(error)}


class MaskUnexpectedErrors(SchemaExtension):
    """Replaces every unexpected error with a message and an error id that is in the logs."""

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except GraphQLError as error:
            # A document that does not parse ends the operation by raising its error here.
            _add_document_code(error)
            raise
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | ExecutionResult) and result.errors:
            result.errors = [self._mask(e) for e in result.errors]
        # Parse and validation errors leave no result here; the response carries these objects.
        for pre_execution_error in self.execution_context.pre_execution_errors or ():
            _add_document_code(pre_execution_error)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # A subscription's results reach the socket one by one, never through on_operation.
        if isinstance(result, GraphQLExecutionResult | ExecutionResult) and result.errors:
            result.errors = [self._mask(e) for e in result.errors]
        yield

    def _mask(self, error: GraphQLError) -> GraphQLError:
        if _is_expected(error):
            original = error.original_error
            if isinstance(original, GatewayError) and not error.extensions:
                error.extensions = original.extensions
            _add_document_code(error)
            return error
        error_id = uuid.uuid4().hex
        log.error(
            "graphql.unexpected_error",
            error_id=error_id,
            path=error.path,
            exc_info=error.original_error,
        )
        return GraphQLError(
            f"Unexpected error; it has been logged as {error_id}.",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "errorId": error_id},
        )
