"""Kinfolk's routers: each turns away, before trying any of its routes, a path none of them can
match.

Since 0.137, FastAPI keeps every included router as a node of a tree and matches a request by
walking the tree route by route; it never skips a router whose paths cannot match
(fastapi/fastapi#16159, open). With every service in one app, about 330 routes, a request to a
late service walked every earlier one first. That cost 0.3 to 0.6 ms of CPU per request before
any work was done, and the gateway paid it again for each in-process call the home screen makes.

A route's path up to its first parameter is a literal prefix that every path it matches begins
with. A `Router` collects those prefixes from its whole tree and answers "no match" at once for a
path that begins with none of them. Matching is otherwise FastAPI's own, so a path that passes
the gate is routed exactly as before.

A router's paths are relative to where it is included. A `Router` that includes another tells
it under which prefix; one that no `Router` includes is a service's router, which the kernel
includes in the app without a prefix, so its paths are the request's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.routing import Match
from starlette.types import Scope


class Router(APIRouter):
    """An `APIRouter` that skips the paths none of its routes can match. Every router in
    Kinfolk's services is one, so each knows its whole tree and where it is served."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Each router included here, with the prefix (in this router's terms) its routes are
        # served under: FastAPI keeps it on a private node, so it is noted as it is given.
        self._included: list[tuple[APIRouter, str]] = []
        # The routers that include this one, with that prefix.
        self._included_by: list[tuple[Router, str]] = []
        # Worked out on the first request, once every route is declared; redone if a route or
        # an inclusion is added anywhere later.
        self._gate_version = (-1, -1)
        self._gate: tuple[str, ...] | None = None

    def add_api_route(self, *args: Any, **kwargs: Any) -> None:
        _declared()
        super().add_api_route(*args, **kwargs)

    def add_api_websocket_route(self, *args: Any, **kwargs: Any) -> None:
        _declared()
        super().add_api_websocket_route(*args, **kwargs)

    def include_router(self, router: APIRouter, *args: Any, **kwargs: Any) -> None:
        _declared()
        super().include_router(router, *args, **kwargs)
        prefix = self.prefix + str(kwargs.get("prefix", ""))
        self._included.append((router, prefix))
        if isinstance(router, Router):
            router._included_by.append((self, prefix))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        gate = self._absolute_gate()
        if gate is not None and not _route_path(scope).startswith(gate):
            return Match.NONE, {}
        return super().matches(scope)

    def literal_prefixes(self) -> tuple[str, ...] | None:
        """What every path a route of this tree matches begins with, relative to where this
        router is included; None when one cannot be known (a router of another kind included
        here), and then nothing is skipped."""
        prefixes: set[str] = set()
        for route in self.routes:
            # An included router is FastAPI's private node: only its `original_router` is read.
            included = getattr(route, "original_router", None)
            if included is not None:
                inner = self._prefixes_of_included(included)
                if inner is None:
                    return None
                prefixes.update(inner)
                continue
            # A route's own path already carries this router's prefix.
            path = getattr(route, "path", None)
            if not isinstance(path, str):
                return None
            prefixes.add(path.split("{", 1)[0])
        return tuple(sorted(prefixes))

    def served_under(self) -> tuple[str, ...]:
        """The prefixes this router's paths are served under in the app."""
        if not self._included_by:
            return ("",)
        return tuple(
            outer + prefix
            for parent, prefix in self._included_by
            for outer in parent.served_under()
        )

    def _absolute_gate(self) -> tuple[str, ...] | None:
        version = (_declarations, len(self.routes))
        if version != self._gate_version:
            relative = self.literal_prefixes()
            self._gate = (
                None
                if relative is None
                else tuple(outer + prefix for outer in self.served_under() for prefix in relative)
            )
            self._gate_version = version
        return self._gate

    def _prefixes_of_included(self, router: APIRouter) -> list[str] | None:
        if not isinstance(router, Router):
            return None
        under = [prefix for included, prefix in self._included if included is router]
        inner = router.literal_prefixes()
        if not under or inner is None:
            return None
        return [outer + prefix for outer in under for prefix in inner]


# How many routes and inclusions any `Router` has been given: a gate worked out before the last
# one is worked out again.
_declarations = 0


def _declared() -> None:
    global _declarations
    _declarations += 1


def _route_path(scope: Scope) -> str:
    """The path the routes see, as Starlette routes it: behind a proxy that sets `root_path`,
    without it."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path
