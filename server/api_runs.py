"""`/api/runs`: pages of runs, one run, its events, and the operator's requests."""

from __future__ import annotations

from typing import Any

import anyio
from sagactl.engine import Event, InputError, RunResult
from sagactl.engine.api import check_inputs, new_run_id
from sagactl.engine.states import RunState
from sagactl.engine.store import RunSummary
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import ApiError, read_json
from .services import Services, services_of
from .sse import event_json, stream_events

MAX_PAGE = 500
STATES = [str(s) for s in RunState]


def summary_json(run: RunSummary) -> dict[str, Any]:
    """A row of `sagactl list --json`."""
    return {
        "run_id": run.run_id,
        "saga": run.saga,
        "state": run.state,
        "started": run.started,
        "finished": run.finished,
        "owner": run.owner,
        "lease_expires": run.lease_expires,
        "node": run.node,
    }


def page_query(request: Request) -> dict[str, Any]:
    """`state` (repeatable or comma-separated), `saga`, `q`, `limit`, `before`, `parent`
    (the child saga runs of a run), checked."""
    params = request.query_params
    states = [s for value in params.getlist("state") for s in value.split(",") if s]
    unknown = sorted(set(states) - set(STATES))
    if unknown:
        raise ApiError(400, f"unknown state {unknown[0]!r}: use one of {', '.join(STATES)}")
    try:
        limit = int(params.get("limit", "50"))
    except ValueError:
        raise ApiError(400, "limit must be a whole number") from None
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, f"limit must be 1 to {MAX_PAGE}")
    return {
        "states": states or None,
        "saga": params.get("saga") or None,
        "q": (params.get("q") or "").strip()[:200] or None,
        "before": params.get("before") or None,
        "limit": limit,
        "parent": params.get("parent") or None,
    }


async def runs_page(
    services: Services, query: dict[str, Any]
) -> tuple[list[RunSummary], str | None]:
    """One page and the cursor of the next (None on the last page)."""
    limit = query["limit"]
    runs = await services.store.page_runs(**{**query, "limit": limit + 1})
    more = len(runs) > limit
    runs = runs[:limit]
    return runs, (runs[-1].cursor if more and runs else None)


async def list_runs(request: Request) -> Response:
    runs, cursor = await runs_page(services_of(request), page_query(request))
    return JSONResponse({"runs": [summary_json(r) for r in runs], "next": cursor})


async def get_run(request: Request) -> Response:
    result = await services_of(request).engine.status(request.path_params["run_id"])
    return JSONResponse(result.to_json())


async def get_events(request: Request) -> Response:
    services = services_of(request)
    try:
        after = int(request.query_params.get("after", "0"))
    except ValueError:
        raise ApiError(400, "after must be a whole number") from None
    events = await services.engine.log(request.path_params["run_id"], after_seq=after)
    return JSONResponse({"events": [event_json(e) for e in events]})


async def stream(request: Request) -> Response:
    return await stream_events(request, services_of(request), request.path_params["run_id"])


async def start_run(request: Request) -> Response:
    """`{"saga": NAME, "inputs": {...}, "run_id": optional}` -> 202 `{"run_id"}`."""
    services = services_of(request)
    body = await read_json(request, services.config.max_body)
    if not isinstance(body, dict) or not isinstance(body.get("saga"), str):
        raise ApiError(400, 'the body must be {"saga": NAME, "inputs": {...}}')
    inputs = body.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise ApiError(400, "inputs must be an object")
    run_id = body.get("run_id") or new_run_id()
    if not isinstance(run_id, str) or not 1 <= len(run_id) <= 128:
        raise ApiError(400, "run_id must be a string of 1 to 128 characters")
    name = body["saga"]
    if name not in services.sagas.names():
        raise ApiError(404, f"no saga named {name!r}")
    saga = services.sagas.get(name)
    try:
        check_inputs(saga, inputs)
    except InputError as exc:
        raise ApiError(422, str(exc)) from None
    await _in_background(services, run_id, lambda: services.engine.run(saga, inputs, run_id=run_id))
    return JSONResponse({"run_id": run_id}, status_code=202)


async def _in_background(services: Services, run_id: str, call: Any) -> None:
    """Start `call` (which creates or resumes the run) and return once the run has an
    event committed by it, or once it ended (its error, if any, is raised here)."""
    moved = anyio.Event()
    failure: list[BaseException] = []

    def on_event(event: Event) -> None:
        if event.seq:
            moved.set()

    stop = services.hub.listen(run_id, on_event)

    async def go() -> None:
        try:
            await call()
        except Exception as exc:
            failure.append(exc)
            raise
        finally:
            moved.set()

    services.spawn(f"run {run_id}", go)
    try:
        await moved.wait()
    finally:
        stop()
    if failure:
        raise failure[0]


async def cancel(request: Request) -> Response:
    services = services_of(request)
    run_id = request.path_params["run_id"]
    await _check_cancellable(services, run_id)
    await services.store.request_cancel(run_id)
    services.spawn(f"cancel {run_id}", lambda: services.engine.cancel(run_id))
    return await _status(services, run_id, 202)


async def _check_cancellable(services: Services, run_id: str) -> None:
    state = RunState((await services.store.get_run(run_id)).state)
    if state is RunState.STUCK:
        raise ApiError(409, f"run {run_id} is stuck: resume or abandon it")
    if state not in (RunState.QUEUED, RunState.RUNNING, RunState.COMPENSATING):
        raise ApiError(409, f"run {run_id} is already {state}")


async def resume(request: Request) -> Response:
    services = services_of(request)
    run_id = request.path_params["run_id"]
    record = await services.store.get_run(run_id)
    if record.owner is not None:
        raise ApiError(409, f"run {run_id} is held by a live process ({record.owner})")
    if RunState(record.state) in (RunState.SUCCEEDED, RunState.COMPENSATED, RunState.CANCELLED):
        raise ApiError(409, f"run {run_id} is already {record.state}")
    await _in_background(services, run_id, lambda: services.engine.resume(run_id))
    return await _status(services, run_id, 202)


async def retry(request: Request) -> Response:
    """Continue a `stuck` run where it stood (`sagactl retry`): new attempts, same run."""
    services = services_of(request)
    run_id = request.path_params["run_id"]
    record = await services.store.get_run(run_id)
    if RunState(record.state) is not RunState.STUCK:
        raise ApiError(
            409, f"run {run_id} is {record.state}, not stuck: only a stuck run is retried"
        )
    if record.owner is not None:
        raise ApiError(409, f"run {run_id} is held by a live process ({record.owner})")
    await _in_background(services, run_id, lambda: services.engine.retry(run_id))
    return await _status(services, run_id, 202)


async def abandon(request: Request) -> Response:
    services = services_of(request)
    run_id = request.path_params["run_id"]
    result: RunResult = await services.engine.abandon(run_id)
    return JSONResponse(result.to_json())


async def _status(services: Services, run_id: str, code: int) -> Response:
    return JSONResponse((await services.engine.status(run_id)).to_json(), status_code=code)


routes = [
    Route("/api/runs", list_runs, methods=["GET"]),
    Route("/api/runs", start_run, methods=["POST"]),
    Route("/api/runs/{run_id}", get_run, methods=["GET"]),
    Route("/api/runs/{run_id}/events", get_events, methods=["GET"]),
    Route("/api/runs/{run_id}/stream", stream, methods=["GET"]),
    Route("/api/runs/{run_id}/cancel", cancel, methods=["POST"]),
    Route("/api/runs/{run_id}/resume", resume, methods=["POST"]),
    Route("/api/runs/{run_id}/retry", retry, methods=["POST"]),
    Route("/api/runs/{run_id}/abandon", abandon, methods=["POST"]),
]
