"""The web console: server-rendered pages (Jinja2, autoescaped), a little plain JS, SSE.

Everything shown may be attacker text (app names, action errors, build output): templates
escape it, the JS only ever sets `textContent`, and the page data travels as JSON in
`<script type="application/json">` (Jinja's `tojson` escapes `<`, `>` and `&`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio.to_thread
import jinja2
from sagactl.actions.build_from_tar import records
from sagactl.engine import CompiledSaga, InputError, RunNotFound
from sagactl.engine.render import STATES, render
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .api_catalog import saga_named
from .api_runs import STATES as RUN_STATES
from .api_runs import page_query, runs_page, summary_json
from .errors import ApiError
from .services import services_of
from .sse import event_json

HERE = Path(__file__).parent
templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every page is HTML: escape everything not marked safe
    undefined=jinja2.StrictUndefined,
)
MAX_LOG_SHOWN = 20_000
"""Events a run page loads at once (a run of 1,000 actions logs some 5,000)."""


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(states=dict(STATES), **context)
    return HTMLResponse(html, status_code=status)


@functools.lru_cache(maxsize=64)
def _svg(definition_hash: str, saga: CompiledSaga) -> str:
    """The saga drawn once per definition (states are coloured in by the page's JS):
    Graphviz escapes every label, and the XML prolog is cut so it can be inlined."""
    svg = render(saga, "svg")
    assert isinstance(svg, str)
    return svg[svg.index("<svg") :]


async def graph_svg(saga: CompiledSaga) -> str:
    return await anyio.to_thread.run_sync(_svg, saga.canonical_hash, saga)


async def runs(request: Request) -> Response:
    services = services_of(request)
    query = page_query(request)
    found, cursor = await runs_page(services, query)
    return page(
        "runs.html",
        runs=[summary_json(r) for r in found],
        next=cursor,
        query=query,
        run_states=RUN_STATES,
    )


async def run(request: Request) -> Response:
    services = services_of(request)
    run_id = request.path_params["run_id"]
    try:
        record = await services.store.get_run(run_id)
    except RunNotFound:
        return page("missing.html", 404, what=f"no run {run_id!r}")
    status = await services.engine.status(run_id)
    saga = CompiledSaga.from_dict(record.definition)
    events = await services.store.read_log(run_id, limit=MAX_LOG_SHOWN)
    actions = [
        {
            "name": name,
            "uses": saga.actions[name].uses,
            "needs": sorted(saga.actions[name].depends_on),
            "with": saga.actions[name].to_dict()["with"],
            **status.actions[name].to_json(),
        }
        for name in saga.topological_order()
    ]
    return page(
        "run.html",
        run=status.to_json(),
        inputs=dict(record.inputs),
        actions=actions,
        svg=await graph_svg(saga),
        data={
            "run_id": run_id,
            "state": status.state,
            "order": [a["name"] for a in actions],
            "actions": {a["name"]: a["state"] for a in actions},
            "progress": dict(status.progress),
            "events": [event_json(e) for e in events],
            "colours": dict(STATES),
        },
    )


async def apps(request: Request) -> Response:
    async with services_of(request).store.transaction() as tx:
        found = await records.list_apps(tx)
    return page("apps.html", apps=found)


async def app(request: Request) -> Response:
    name = request.path_params["app"]
    async with services_of(request).store.transaction() as tx:
        try:
            shown = await records.show_app(tx, name)
        except InputError:
            return page("missing.html", 404, what=f"no app named {name!r}")
    return page("app.html", app=shown)


async def sagas(request: Request) -> Response:
    services = services_of(request)
    return page("sagas.html", names=services.sagas.names())


async def saga(request: Request) -> Response:
    services = services_of(request)
    name = request.path_params["name"]
    try:
        compiled = saga_named(services, name)
    except ApiError as exc:
        return page("missing.html", 404, what=exc.message)
    source = await anyio.to_thread.run_sync(services.sagas.path(name).read_text)
    return page("saga.html", saga=compiled, svg=await graph_svg(compiled), source=source)


routes = [
    Route("/", runs, methods=["GET"]),
    Route("/runs/{run_id}", run, methods=["GET"]),
    Route("/apps", apps, methods=["GET"]),
    Route("/apps/{app}", app, methods=["GET"]),
    Route("/sagas", sagas, methods=["GET"]),
    Route("/sagas/{name}", saga, methods=["GET"]),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]
