"""`GET /api/runs/{id}/stream`: Server-Sent Events, every record of the run's log as it is
committed, exactly once and in order.

Each record is sent with `id: <seq>`, so a client that reconnects with `Last-Event-ID`
(or `?after=`) continues after the last one it got; `0` starts from the first. The stream
reads the store by `seq`, never a copy in memory, so runs driven by other processes are
streamed too (found by polling); the hub wakes it at once for runs driven here. Progress
events (not logged one by one) go out as `event: progress`, without an id, best effort.
The stream ends after the run's last record once the run is finished or stuck.
"""

from __future__ import annotations

import collections
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from sagactl.engine import Event
from sagactl.engine.events import EventKind
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .errors import ApiError
from .services import Services

KEEPALIVE = 15.0
MAX_PENDING_PROGRESS = 64


def event_json(event: Event) -> dict[str, Any]:
    """An event as `sagactl logs --json` prints it."""
    return {
        "seq": event.seq,
        "at": event.at,
        "kind": event.kind,
        "action": event.action,
        "data": dict(event.data),
    }


def frame(event: Event) -> str:
    data = json.dumps(event_json(event), default=str, separators=(",", ":"))
    if event.seq:
        return f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"
    return f"event: progress\ndata: {data}\n\n"


def start_after(request: Request) -> int:
    text = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not text.strip().isdigit():
        raise ApiError(400, f"Last-Event-ID must be an event's seq, got {text[:40]!r}")
    return int(text)


async def follow(services: Services, run_id: str, after: int) -> AsyncIterator[str]:
    """The frames of `run_id` after `after`, until the run settles."""
    progress: collections.deque[Event] = collections.deque(maxlen=MAX_PENDING_PROGRESS)

    def on_event(event: Event) -> None:
        if event.kind == EventKind.ACTION_PROGRESS and not event.seq:
            progress.append(event)

    stop = services.hub.listen(run_id, on_event)
    try:
        with services.tails.follow(run_id) as tail:
            await services.tails.refresh(tail)
            quiet = 0.0
            while True:
                changed = tail.changed()
                for event in tail.after(after):
                    after = event.seq
                    yield frame(event)
                while progress:
                    yield frame(progress.popleft())
                if tail.settled:
                    yield "event: end\ndata: {}\n\n"
                    return
                woken = False
                with anyio.move_on_after(services.config.poll):
                    await changed.wait()
                    woken = True
                quiet = 0.0 if woken else quiet + services.config.poll
                if quiet >= KEEPALIVE:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                await services.tails.refresh(tail, poll=not woken)
    finally:
        stop()


async def stream_events(request: Request, services: Services, run_id: str) -> Response:
    after = start_after(request)
    if not services.tails.known(run_id):
        await services.store.get_run(run_id)  # 404 before the stream starts
    return StreamingResponse(
        follow(services, run_id, after),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
