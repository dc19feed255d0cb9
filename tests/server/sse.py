"""A small Server-Sent Events reader for the tests (frames as dicts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


def frames(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Each frame: {"id": int|None, "event": str, "data": parsed JSON}; comments skipped."""
    frame: dict[str, Any] = {"id": None, "event": "message", "data": ""}
    for line in response.iter_lines():
        if not line:
            if frame["data"]:
                yield {**frame, "data": json.loads(frame["data"])}
            frame = {"id": None, "event": "message", "data": ""}
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "id":
                frame["id"] = int(value)
            elif key == "event":
                frame["event"] = value
            elif key == "data":
                frame["data"] += value


def read_stream(
    client: httpx.Client, run_id: str, *, last: int | None = None, stop_after: int | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """The logged frames of a run's stream (progress left out), and whether `end` came."""
    headers = {} if last is None else {"Last-Event-ID": str(last)}
    got: list[dict[str, Any]] = []
    with client.stream("GET", f"/api/runs/{run_id}/stream", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for frame in frames(response):
            if frame["event"] == "end":
                return got, True
            if frame["id"] is None:
                continue
            got.append(frame)
            if stop_after is not None and len(got) >= stop_after:
                return got, False
    return got, False
