"""The server `benchmarks/graphql.py` measures: Kinfolk's app as `kinfolk serve all` builds it,
plus a bare strawberry schema answering `{ hello }` at `/bare/graphql` in the same app, on the
same middleware, workers and parser and validation caches: the anchor costs everything the home
screen costs except the gateway's own work and the services behind it. And at `/shape/graphql`,
the home screen's shape answered from memory (`benchmarks._home_shape`): its floor.

Run by the benchmark: `python -m benchmarks.graphql_server --port P --workers N`.
"""

from __future__ import annotations

import argparse
from functools import partial

import strawberry
import uvicorn
from fastapi import FastAPI
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.fastapi import GraphQLRouter

from benchmarks._home_shape import home_shape_schema
from services.asgi import create_app as create_kinfolk_app


@strawberry.type
class BareQuery:
    @strawberry.field
    def hello(self) -> str:
        return "world"


async def no_context() -> None:
    """The routers' context: none, found without leaving the event loop. Strawberry's default
    getter is a plain function, which FastAPI runs in its thread pool: a hop to another thread
    and back on every request that Kinfolk's own `/graphql` (an async getter) does not make."""


def create_app() -> FastAPI:
    app = create_kinfolk_app()
    bare = strawberry.Schema(
        query=BareQuery,
        extensions=[partial(ParserCache, maxsize=1024), partial(ValidationCache, maxsize=1024)],
    )
    app.include_router(
        GraphQLRouter(bare, path="/bare/graphql", graphql_ide=None, context_getter=no_context)
    )
    shape = home_shape_schema()
    app.include_router(
        GraphQLRouter(shape, path="/shape/graphql", graphql_ide=None, context_getter=no_context)
    )
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    uvicorn.run(
        "benchmarks.graphql_server:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
