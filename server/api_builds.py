"""`POST /api/apps/{app}/builds`: the request body is the tar stream of a build.

The body is never buffered: it is registered in the StreamRegistry as an async byte source
and receive_tar stages it as it arrives. The answer comes once the upload is staged and
checked and its app config and Procfile are known to pass (`202 {"run_id"}`; the build
goes on, unpacking first), or, with `?wait=1`, when the run ends (`200` and the build's
result). A bad upload is answered with the CLI's one line: 400 a bad tar, 413 over a cap,
422 a bad app.toml or Procfile; its run is compensated, so nothing stays staged and no
version is made. A client that goes away mid-upload leaves a run compensated the same way.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import structlog
from sagactl.actions.build_from_tar import BuildFailed, BuildResult, build_from_tar_async
from sagactl.actions.build_from_tar.entry import SAGA, run_id_for
from sagactl.actions.build_from_tar.settings import settings_of
from sagactl.actions.build_from_tar.steps.receive import STAGED_AND_CHECKED
from sagactl.engine import Event, FatalError, InputError, RunNotFound
from sagactl.engine.events import EventKind
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import problem
from .services import Services, services_of

log = structlog.get_logger("sagactl.server")

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
OVER_CAP = re.compile(
    r"upload is larger than the limit|unpacks to more than the limit|has more than \d+ members"
)
CONFIG_ACTIONS = frozenset({"load_config", "detect_stack", "parse_services"})
"""Once these succeeded the upload is staged and checked, and its config is sound. Most
uploads are answered sooner: receive_tar says STAGED_AND_CHECKED before it unpacks when
the config is sure to pass (it says nothing when unsure, and these decide)."""


class UploadBody:
    """The request body as it arrives, read straight from the ASGI channel.

    A client that goes away is not retried: its stream cannot be read again (FatalError
    compensates the run at once).
    """

    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        self.complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Pieces as the server hands them over (some 64 KiB): staging joins them into
        # its own chunks, copying each byte once.
        while not self.complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise FatalError("the client disconnected before the upload was complete")
            self.complete = not message.get("more_body", False)
            if body := message.get("body", b""):
                yield body

    async def drain(self) -> None:
        """Read and drop what a refused upload still sends (a little of it): closing with
        unread data makes the kernel reset the connection, and the client would get that
        instead of our answer. Bigger refused uploads get the reset."""
        dropped = 0
        with anyio.move_on_after(DRAIN_SECONDS):
            while not self.complete and dropped <= DRAIN_BYTES:
                message = await self._receive()
                if message["type"] != "http.request":
                    return
                self.complete = not message.get("more_body", False)
                dropped += len(message.get("body", b""))


DRAIN_BYTES = 8 << 20
DRAIN_SECONDS = 5.0


def status_of_bad_input(failed_action: str | None, error: str) -> int:
    if failed_action == "receive_tar":
        return 413 if OVER_CAP.search(error) else 400
    if failed_action in CONFIG_ACTIONS:
        return 422
    return 400


async def post_build(request: Request) -> Response:
    services = services_of(request)
    app = request.path_params["app"]
    wait = request.query_params.get("wait", "0") not in ("0", "", "false", "no")
    if not APP_NAME.match(app):
        return problem(400, f"bad app name {app!r}: use 1-63 of a-z, 0-9 and '-', a letter first")
    cap = settings_of(services.deps).limits.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        return problem(413, f"the upload is larger than the limit of {cap} bytes")

    body = UploadBody(request)
    stream_id = services.uploads.new_id()
    run_id = run_id_for(stream_id)
    checked = anyio.Event()
    ended = anyio.Event()
    outcome: dict[str, Any] = {}

    unchecked = set(CONFIG_ACTIONS)

    def on_event(event: Event) -> None:
        if event.kind == EventKind.ACTION_SUCCEEDED and event.action in unchecked:
            unchecked.discard(event.action)
            if not unchecked:
                checked.set()
        elif (
            event.kind == EventKind.ACTION_PROGRESS
            and event.action == "receive_tar"
            and event.data.get("message") == STAGED_AND_CHECKED
        ):
            checked.set()

    stop = services.hub.listen(run_id, on_event)

    async def build() -> None:
        try:
            outcome["result"] = await build_from_tar_async(
                app,
                body,
                db=services.store,
                deps=services.deps,
                registry=services.uploads,
                on_progress=services.relay,
                on_run=(services.metrics.driving,),  # labels the build's metrics
                stream_id=stream_id,
                faults=services.faults,
                saga=services.sagas.get(SAGA),  # compiled once, not per upload
                actions=services.actions,  # described once, not per upload
            )
        except BuildFailed as exc:
            outcome["result"] = exc.result
        except InputError as exc:
            outcome["bad_input"] = str(exc)
        except Exception as exc:
            log.exception("build failed", run_id=run_id)
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            ended.set()
            stop()

    services.spawn(f"build {run_id}", build)
    async with anyio.create_task_group() as group:

        async def until(event: anyio.Event) -> None:
            await event.wait()
            group.cancel_scope.cancel()

        group.start_soon(until, ended)
        if not wait:
            group.start_soon(until, checked)
    if ended.is_set() and "result" not in outcome:
        await body.drain()
    return await _answer(services, run_id, outcome, ended.is_set())


async def _answer(
    services: Services, run_id: str, outcome: dict[str, Any], ended: bool
) -> Response:
    if not ended:
        return JSONResponse({"run_id": run_id}, status_code=202)
    if "bad_input" in outcome:
        try:
            status = await services.engine.status(run_id)
        except RunNotFound:  # refused before the run was made (its inputs)
            return problem(400, outcome["bad_input"])
        error = status.error or outcome["bad_input"]
        code = status_of_bad_input(status.failed_action, error)
        return problem(code, error, run_id=run_id, failed_action=status.failed_action)
    if "error" in outcome:
        return problem(500, outcome["error"], run_id=run_id)
    result: BuildResult = outcome["result"]
    return JSONResponse(result.to_json(), status_code=200)


routes = [Route("/api/apps/{app}/builds", post_build, methods=["POST"])]
