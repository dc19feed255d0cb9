"""Is a freshly started sandbox healthy? Its port accepts connections and, when app.toml
sets `[services.NAME] health = "/path"`, that path answers 2xx or 3xx over HTTP.

Probed until the timeout; a sandbox that exits first fails at once, with its log's tail.
"""

from __future__ import annotations

import math
from pathlib import Path

import anyio
from sagactl.plugins.runtimes.base import SandboxHandle, SandboxRuntime

INTERVAL = 0.05
PROBE_TIMEOUT = 2.0
LOG_TAIL = 10


class Unhealthy(Exception):
    """The sandbox exited, never listened, or its health path did not answer 2xx/3xx."""


def log_tail(path: str | None, lines: int = LOG_TAIL) -> str:
    if not path:
        return ""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


async def http_status(port: int, path: str) -> int:
    """The status code of `GET path` on 127.0.0.1:port (HTTP/1.0, connection closed)."""
    with anyio.fail_after(PROBE_TIMEOUT):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            request = (
                f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: sagactl\r\n\r\n"
            )
            await stream.send(request.encode("ascii"))
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                try:
                    head += await stream.receive()
                except anyio.EndOfStream:
                    break
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise Unhealthy(f"GET {path} did not get an HTTP answer: {head[:80]!r}")
    return int(parts[1])


async def _probe(port: int, path: str | None) -> str | None:
    """None when healthy, else what is wrong now."""
    try:
        if path is None:
            with anyio.fail_after(PROBE_TIMEOUT):
                stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.aclose()
            return None
        status = await http_status(port, path)
    except (OSError, TimeoutError, anyio.BrokenResourceError) as exc:
        return f"port {port} does not accept connections ({exc.__class__.__name__})"
    except Unhealthy as exc:
        return str(exc)
    if 200 <= status < 400:
        return None
    return f"GET {path} answered {status}"


async def wait_healthy(
    runtime: SandboxRuntime,
    handle: SandboxHandle,
    *,
    what: str,
    path: str | None = None,
    within: float = 30.0,
) -> float:
    """Waits until the sandbox is healthy; returns the seconds it took. Raises Unhealthy."""
    started = anyio.current_time()
    deadline = started + (within if math.isfinite(within) else 1e9)
    problem = "not probed yet"
    while True:
        if await runtime.status(handle) != "running":
            raise Unhealthy(
                f"{what} exited while starting; log {handle.log_path}:\n{log_tail(handle.log_path)}"
            )
        if handle.port is None:
            return anyio.current_time() - started
        found = await _probe(handle.port, path)
        if found is None:
            return anyio.current_time() - started
        problem = found
        if anyio.current_time() >= deadline:
            raise Unhealthy(
                f"{what} was not healthy after {within:g}s: {problem}; log {handle.log_path}:\n"
                f"{log_tail(handle.log_path)}"
            )
        await anyio.sleep(INTERVAL)
