"""`/graphql`: queries and mutations over HTTP, subscriptions over `graphql-transport-ws`."""

from __future__ import annotations

import dataclasses

from cross_web import AsyncHTTPRequestAdapter
from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from services.gateway.context import GatewayContext, get_context
from services.gateway.errors import GatewayError
from services.gateway.schema_build import SCHEMA
from services.kernel.errors import NotFound
from services.kernel.settings import Settings


class GatewayRouter(GraphQLRouter[GatewayContext, None]):
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
    tags=["graphql"],
)
