"""The ASGI app: routes, the guard, error handlers, and the services' lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sagactl.engine import SagaError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import api_builds, api_catalog, api_rollback, api_runs, console, openapi
from .config import ServerConfig
from .errors import ApiError, handle, handle_http
from .security import Guard
from .services import running, services_of


async def healthz(request: Request) -> Response:
    services = services_of(request)
    await services.store.page_runs(limit=1)  # the store answers
    return JSONResponse({"ok": True, "store": services.store.dialect})


async def metrics(request: Request) -> Response:
    services = services_of(request)
    text = await services.metrics.render(services.store)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


def create_app(config: ServerConfig | None = None) -> Starlette:
    config = config or ServerConfig()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with running(config) as services:
            yield {"services": services}

    return Starlette(
        routes=[
            *openapi.routes,
            *api_builds.routes,
            *api_runs.routes,
            *api_catalog.routes,
            *api_rollback.routes,
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *console.routes,
        ],
        middleware=[Middleware(Guard, token=config.token, max_body=config.max_body)],
        # ApiError and SagaError are answered by ExceptionMiddleware; only what is left
        # (a 500) reaches the `Exception` handler, which Starlette logs and re-raises.
        exception_handlers={
            HTTPException: handle_http,
            ApiError: handle,
            SagaError: handle,
            Exception: handle,
        },
        lifespan=lifespan,
    )
