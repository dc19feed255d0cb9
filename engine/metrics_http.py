"""A tiny HTTP endpoint for Prometheus on the worker's own event loop (`--metrics-port`).

The store's gauges are read at each scrape, with the worker's store, on its event loop:
prometheus-client's own server would answer from a thread that cannot await the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import structlog

from .metrics import CONTENT_TYPE

log = structlog.get_logger("sagactl.metrics")

_MAX_REQUEST = 16 * 1024


async def serve_metrics(
    render: Callable[[], Awaitable[bytes]],
    *,
    port: int,
    host: str = "0.0.0.0",
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Answer `GET /metrics` with `render()` until cancelled; reports the bound port."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener:
        bound = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
        task_status.started(bound)

        async def handle(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                try:
                    with anyio.fail_after(10):
                        await _answer(stream, render)
                except Exception as exc:  # a client that hangs up or sends junk
                    log.debug("metrics request failed", error=str(exc))

        await listener.serve(handle)


async def _answer(stream: anyio.abc.SocketStream, render: Callable[[], Awaitable[bytes]]) -> None:
    request = b""
    while b"\r\n\r\n" not in request and len(request) < _MAX_REQUEST:
        request += await stream.receive(4096)
    method, path, *_ = [*request.split(b"\r\n", 1)[0].decode("latin-1").split(" "), "", ""]
    if method != "GET" or path.split("?")[0] not in ("/metrics", "/"):
        await stream.send(_response(404, "text/plain", b"not found: GET /metrics\n"))
        return
    await stream.send(_response(200, CONTENT_TYPE, await render()))


def _response(status: int, content_type: str, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
