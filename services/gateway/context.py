"""What every resolver gets: the member, their upstream clients and the request's DataLoaders."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from services.gateway.errors import NotAuthenticated, UpstreamUnavailable
from services.gateway.loaders import Loaders
from services.gateway.persisted import Manifests, PersistedDocuments
from services.gateway.upstream import UpstreamPool, Upstreams
from services.kernel.auth import Authenticator, MemberPrincipal
from services.kernel.clients import Peers, hosted_services
from services.kernel.errors import KinfolkError, ServiceUnavailable
from services.kernel.settings import Settings


class GatewayContext(BaseContext):
    def __init__(
        self,
        *,
        settings: Settings,
        redis: Redis,
        pool: UpstreamPool,
        authenticator: Authenticator,
        persisted: PersistedDocuments,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.redis = redis
        self.persisted = persisted
        self._pool = pool
        self._authenticator = authenticator
        self._principal: MemberPrincipal | None = None
        self._authorization: str | None = None
        self._auth_problem = "Send a member token: `Authorization: Bearer <token>`."
        self._auth_unavailable = False
        self._upstreams: Upstreams | None = None
        self._loaders: Loaders | None = None
        # The query's cost, set by the cost limit before execution and reported in `extensions`.
        self.cost = 0
        # A websocket's context lives as long as the socket; its token is checked once.
        self._connection_checked = False
        self._connection_lock = asyncio.Lock()

    async def authenticate(self, authorization: str | None) -> None:
        """Checks the member token once per request (or per subscription connection)."""
        self._principal = None
        self._authorization = None
        self._auth_unavailable = False
        if not authorization:
            return
        try:
            principal = await self._authenticator.authenticate(authorization)
        except ServiceUnavailable as exc:
            # The token could not be checked (the identity provider's keys, or the key store,
            # out of reach): the app should retry, not sign the member out.
            self._auth_problem = str(exc.detail)
            self._auth_unavailable = True
            return
        except KinfolkError as exc:
            self._auth_problem = str(exc.detail)
            return
        if not isinstance(principal, MemberPrincipal):
            self._auth_problem = (
                "The GraphQL API is for members: send a member token, not a staff API key."
            )
            return
        self._principal = principal
        self._authorization = authorization

    async def subscriber(self) -> MemberPrincipal:
        """The member of a websocket connection; `NotAuthenticated` when there is none.

        Browsers cannot set headers on a websocket, so the token may come in `connection_init`'s
        payload (`{"Authorization": "Bearer <token>"}`, which strawberry keeps as
        `connection_params`); a header on the upgrade request counts when the payload has none."""
        async with self._connection_lock:
            if not self._connection_checked:
                authorization = _authorization_param(self.connection_params)
                if authorization is not None:
                    await self.authenticate(authorization)
                self._connection_checked = True
        return self.member

    @property
    def member(self) -> MemberPrincipal:
        """The member calling; `NotAuthenticated` when the token is missing or not valid."""
        if self._principal is None:
            if self._auth_unavailable:
                raise UpstreamUnavailable(self._auth_problem)
            raise NotAuthenticated(self._auth_problem)
        return self._principal

    @property
    def principal(self) -> MemberPrincipal | None:
        return self._principal

    @property
    def upstreams(self) -> Upstreams:
        if self._upstreams is None:
            self.member  # noqa: B018 - raises NotAuthenticated first
            assert self._authorization is not None
            self._upstreams = self._pool.for_member(self._authorization)
        return self._upstreams

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self.member  # noqa: B018 - raises NotAuthenticated before any call is made
            self._loaders = Loaders(self.upstreams)
        return self._loaders


def _authorization_param(params: Any) -> str | None:
    """`Authorization` from `connection_init`'s payload, whatever its case; None if absent."""
    if not isinstance(params, dict):
        return None
    for key, value in params.items():
        if isinstance(key, str) and key.lower() == "authorization":
            # Present but not a string is a bad token, not a missing one.
            return value if isinstance(value, str) else "invalid"
    return None


def _pool(app: FastAPI, settings: Settings) -> UpstreamPool:
    pool: UpstreamPool | None = getattr(app.state, "gateway_upstreams", None)
    if pool is None:
        pool = UpstreamPool(Peers(settings, app, hosted_services(app)))
        app.state.gateway_upstreams = pool
    return pool


def _manifests(app: FastAPI, settings: Settings) -> Manifests:
    manifests: Manifests | None = getattr(app.state, "gateway_manifests", None)
    if manifests is None:
        manifests = Manifests(settings.graphql_operations_dir)
        app.state.gateway_manifests = manifests
    return manifests


async def get_context(connection: HTTPConnection) -> GatewayContext:
    app: Any = connection.app
    settings: Settings = app.state.settings
    redis: Redis = app.state.redis
    context = GatewayContext(
        settings=settings,
        redis=redis,
        pool=_pool(app, settings),
        authenticator=app.state.authenticator,
        persisted=PersistedDocuments(redis, settings, _manifests(app, settings)),
    )
    await context.authenticate(connection.headers.get("authorization"))
    return context


# What every resolver of the gateway's schema receives as `info`.
GatewayInfo = Info[GatewayContext, None]
