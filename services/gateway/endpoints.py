"""`/graphql`: queries and mutations over HTTP, subscriptions over `graphql-transport-ws`."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from services.gateway.context import GatewayContext, get_context
from services.gateway.errors import GatewayError
from services.gateway.schema_build import SCHEMA
from services.kernel.errors import NotFound
from services.kernel.settings import Settings

# The apps hold three subscriptions (points, tier, notifications); each holds a task, a queue and
# a Redis listener share, so a socket asking for many more is a bug or an abuse.
MAX_SUBSCRIPTIONS_PER_SOCKET = 10


class SocketHandler(BaseGraphQLTransportWSHandler[GatewayContext, None]):
    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # strawberry enforces the cap as well, but with an error that has no code; this one says
        # what to do. The connection stays open and its other subscriptions carry on.
        if (
            self.connection_acknowledged
            and message["id"] not in self.operations
            and len(self.operations) >= MAX_SUBSCRIPTIONS_PER_SOCKET
        ):
            error = GatewayError(
                f"A connection holds at most {MAX_SUBSCRIPTIONS_PER_SOCKET} subscriptions; "
                "complete one before starting another.",
                code="TOO_MANY_SUBSCRIPTIONS",
            )
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)


class GatewayRouter(GraphQLRouter[GatewayContext, None]):
    graphql_transport_ws_handler_class = SocketHandler

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        # A request strawberry cannot read as GraphQL (no query, a body that is not JSON, a
        # `variables` that is not an object) would be answered in plain text; apps parse JSON,
        # so it is a GraphQL response with an error and a code, and the same status.
        try:
            return await super().run(request, context, root_value)
        except HTTPException as refused:
            if self.is_websocket_request(request):
                raise
            error = GatewayError(refused.reason, code="BAD_REQUEST")
            return JSONResponse({"data": None, "errors": [error.formatted]}, refused.status_code)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        # GraphiQL is a development tool; production serves only the API.
        settings: Settings = request.app.state.settings
        if settings.environment != "development":
            raise NotFound("GraphiQL is served in development only; POST your queries here.")
        return await super().render_graphql_ide(request)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: GatewayContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # Persisted documents are resolved before strawberry sees the request: a hash becomes
        # its document, and a brand that runs only registered operations is held to them.
        try:
            query = await context.persisted.resolve(
                context.principal, request_data.query, request_data.extensions
            )
        except GatewayError as error:
            return ExecutionResult(data=None, errors=[error])
        return await super().execute_single(
            request,
            request_adapter,
            sub_response,
            context,
            root_value,
            dataclasses.replace(request_data, query=query),
        )


router = GatewayRouter(
    SCHEMA,
    path="/graphql",
    context_getter=get_context,
    subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
    max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_SOCKET,
    # An app sends connection_init at once; a socket that does not is closed (4408) sooner than
    # strawberry's default minute.
    connection_init_wait_timeout=timedelta(seconds=10),
    tags=["graphql"],
)
