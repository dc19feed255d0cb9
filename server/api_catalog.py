"""`/api/sagas` (installed definitions and their graphs) and `/api/apps` (built apps)."""

from __future__ import annotations

from typing import Any

from sagactl.actions.build_from_tar import records
from sagactl.engine import CompiledSaga, InputError
from sagactl.engine.render import render
from sagactl.engine.store import Store
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import ApiError
from .services import Services, services_of

GRAPH_TYPES = {"svg": "image/svg+xml", "json": "application/json"}


def saga_named(services: Services, name: str) -> CompiledSaga:
    """An installed definition by name (never a path: names come from the folder index)."""
    if name not in services.sagas.names():
        raise ApiError(404, f"no saga named {name!r}")
    return services.sagas.get(name)


async def list_sagas(request: Request) -> Response:
    services = services_of(request)
    sagas: list[dict[str, Any]] = []
    for name in services.sagas.names():
        try:
            saga = services.sagas.get(name)
        except Exception as exc:  # a broken definition is listed with its error
            sagas.append({"name": name, "error": str(exc).splitlines()[0]})
            continue
        sagas.append(
            {
                "name": saga.name,
                "version": saga.version,
                "description": saga.description,
                "actions": len(saga.actions),
                "inputs": sorted(saga.inputs),
            }
        )
    return JSONResponse({"sagas": sagas})


async def saga_graph(request: Request) -> Response:
    services = services_of(request)
    fmt = request.query_params.get("format", "svg")
    if fmt not in GRAPH_TYPES:
        raise ApiError(400, f"unknown graph format {fmt!r}: use svg or json")
    saga = saga_named(services, request.path_params["name"])
    drawing = await drawn(saga, fmt)
    return Response(drawing, media_type=GRAPH_TYPES[fmt])


async def drawn(saga: CompiledSaga, fmt: str, states: dict[str, str] | None = None) -> str:
    import anyio.to_thread

    # Graphviz is a subprocess: off the event loop.
    out = await anyio.to_thread.run_sync(lambda: render(saga, fmt, states=states))
    return out if isinstance(out, str) else out.decode()


async def run_states(
    store: Store, run_id: str, services: Services
) -> tuple[CompiledSaga, dict[str, str]]:
    """A run's pinned definition and each action's state."""
    record = await store.get_run(run_id)
    status = await services.engine.status(run_id)
    return CompiledSaga.from_dict(record.definition), {
        name: str(a.state) for name, a in status.actions.items()
    }


async def list_apps(request: Request) -> Response:
    async with services_of(request).store.transaction() as tx:
        apps: list[dict[str, Any]] = await records.list_apps(tx)
    return JSONResponse({"apps": apps})


async def show_app(request: Request) -> Response:
    app = request.path_params["app"]
    async with services_of(request).store.transaction() as tx:
        try:
            shown = await records.show_app(tx, app)
        except InputError:
            raise ApiError(404, f"no app named {app!r}") from None
    return JSONResponse(shown)


routes = [
    Route("/api/sagas", list_sagas, methods=["GET"]),
    Route("/api/sagas/{name}/graph", saga_graph, methods=["GET"]),
    Route("/api/apps", list_apps, methods=["GET"]),
    Route("/api/apps/{app}", show_app, methods=["GET"]),
]
