"""`sagactl build --server URL`: upload the tar to a `sagactl serve` and follow the run.

The upload is streamed (chunked, never read whole); the run's SSE stream then feeds the
same live view as a local build, and the result is read from the run's status.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import httpx
from sagactl.engine import Event, InputError, SagaError

CHUNK = 1 << 20
TOKEN_ENV = "SAGACTL_TOKEN"


class RemoteBuildFailed(SagaError):
    """The server's build did not succeed (compensated, stuck, cancelled)."""

    code = "build_failed"


def _chunks(upload: BinaryIO) -> Iterator[bytes]:
    while chunk := upload.read(CHUNK):
        yield chunk


def _frames(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    kind, data = "message", ""
    for line in response.iter_lines():
        if not line:
            if data:
                yield kind, json.loads(data)
            kind, data = "message", ""
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def build_remote(
    server: str,
    app: str,
    upload: BinaryIO,
    *,
    token: str | None,
    on_progress: Callable[[Event], None],
) -> dict[str, Any]:
    """Upload, follow, and return the finished run (the `status --json` shape)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = server.rstrip("/")
    with httpx.Client(
        base_url=base, headers=headers, timeout=httpx.Timeout(60, read=None)
    ) as client:
        try:
            answer = client.post(
                f"/api/apps/{app}/builds",
                content=_chunks(upload),
                headers={"content-type": "application/x-tar"},
            )
        except httpx.TransportError as exc:
            raise InputError(f"cannot reach {base}: {exc}") from None
        if answer.status_code != 202:
            raise _refusal(answer)
        run_id = str(answer.json()["run_id"])
        with client.stream("GET", f"/api/runs/{run_id}/stream") as stream:
            if stream.status_code != 200:
                raise _refusal(stream)
            for kind, event in _frames(stream):
                if kind == "end":
                    break
                on_progress(
                    Event(
                        run_id,
                        event["kind"],
                        event["action"],
                        event["data"],
                        event["at"],
                        event["seq"],
                    )
                )
        run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
    if run["state"] != "succeeded":
        raise RemoteBuildFailed(f"build of {app} {run['state']} (run {run_id}): {run['error']}")
    return run


def _refusal(answer: httpx.Response) -> SagaError:
    try:
        message = str(answer.json()["error"])
    except (ValueError, KeyError, TypeError):
        answer.read()
        message = answer.text[:200] or answer.reason_phrase
    if answer.status_code in (401, 403):
        return InputError(f"the server refused: {message}")
    if 400 <= answer.status_code < 500:
        return InputError(message)
    return SagaError(f"the server failed ({answer.status_code}): {message}")


def result_line(run: dict[str, Any]) -> str:
    """What a local build prints: `VERSION is active: IMAGE DIGEST`."""
    actions = run["actions"]
    version = actions["create_version"]["outputs"].get("version_id")
    image = actions["build_image"]["outputs"]
    return f"{version} is active: {image.get('image')} {image.get('digest')}"
