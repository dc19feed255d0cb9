"""Load: 50 uploads at once and 200 SSE clients on one `sagactl serve`; nothing is lost and
every run ends. Prints the server's peak RSS and GET /api/runs latency under that load."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import anyio
import httpx
import pytest
from servetools import EXAMPLES, Server
from sse import frames
from tars import tar_of_dir

pytestmark = pytest.mark.slow
UPLOADS = 50
STREAMS = 200


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(600)
def test_fifty_uploads_and_two_hundred_streams(server: Server) -> None:
    body = tar_of_dir(EXAMPLES / "static-site")
    ids: dict[int, str] = {}
    uploaded = [anyio.Event() for _ in range(UPLOADS)]
    streamed: dict[int, list[int]] = {}
    latencies: list[float] = []
    floor: list[float] = []  # a static file: the same event loop, no store, no query
    slowest: list[tuple[float, float]] = []  # (latency, when it was sent, from the start)
    # No connection is reused: an upload's, idle once answered, may be closed by the
    # server's keep-alive timeout (5 s) just as a stream picks it up (a ReadError that is
    # HTTP/1.1's race, not the server's fault; browsers retry such a GET).
    limits = httpx.Limits(max_connections=STREAMS + UPLOADS + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(120, read=None)

    async def upload(client: httpx.AsyncClient, n: int) -> None:
        answer = await client.post(f"/api/apps/load-{n}/builds", content=body)
        assert answer.status_code == 202, answer.text
        ids[n] = answer.json()["run_id"]
        uploaded[n].set()

    async def stream(client: httpx.AsyncClient, n: int) -> None:
        await uploaded[n % UPLOADS].wait()
        run_id = ids[n % UPLOADS]
        async with client.stream("GET", f"/api/runs/{run_id}/stream?after=0") as response:
            assert response.status_code == 200
            lines: list[str] = []
            async for line in response.aiter_lines():
                lines.append(line)
                if line.startswith("event: end"):
                    break

        class Lines:  # frames() reads a response's iter_lines
            def iter_lines(self) -> list[str]:
                return [*lines, ""]

        seqs = [f["id"] for f in frames(Lines()) if f["id"] is not None]  # type: ignore[arg-type]
        streamed[n] = seqs

    finished = threading.Event()

    def poll_runs() -> None:
        """From a thread of its own: the test's event loop, busy with 250 connections,
        must not be what is timed."""
        with httpx.Client(base_url=server.url, timeout=120) as client:
            while not finished.is_set():
                started = time.perf_counter()
                answer = client.get("/api/runs", params={"limit": 50})
                latencies.append(time.perf_counter() - started)
                slowest.append((latencies[-1], started - began))
                assert answer.status_code == 200
                started = time.perf_counter()
                assert client.get("/static/console.css").status_code == 200
                floor.append(time.perf_counter() - started)
                time.sleep(0.05)

    async def main() -> None:
        async with (
            httpx.AsyncClient(base_url=server.url, limits=limits, timeout=timeout) as client,
            anyio.create_task_group() as group,
        ):
            for n in range(STREAMS):
                group.start_soon(stream, client, n)
            for n in range(UPLOADS):
                group.start_soon(upload, client, n)

    poller = threading.Thread(target=poll_runs)
    began = time.perf_counter()
    poller.start()
    try:
        anyio.run(main)
    finally:
        finished.set()
        poller.join(120)
    elapsed = time.perf_counter() - began
    run_ids = [ids[n] for n in range(UPLOADS)]
    assert len(set(run_ids)) == UPLOADS
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for n, seqs in streamed.items():
            run = client.get(f"/api/runs/{run_ids[n % UPLOADS]}").json()
            assert run["state"] == "succeeded", run
            count = len(client.get(f"/api/runs/{run['run_id']}/events").json()["events"])
            assert seqs == list(range(1, count + 1)), (n, seqs)
        apps = client.get("/api/apps").json()["apps"]
    assert len(apps) == UPLOADS
    assert server.proc is not None
    cuts = statistics.quantiles(latencies, n=100)
    static = statistics.quantiles(floor, n=100)
    print(
        f"\nload: {UPLOADS} uploads + {STREAMS} SSE clients in {elapsed:.1f}s;"
        f" serve peak RSS {peak_rss_mib(server.proc.pid):.0f} MiB;"
        f" GET /api/runs under load p50 {cuts[49] * 1000:.1f} ms p99 {cuts[98] * 1000:.1f} ms"
        f" ({len(latencies)} requests); a static file alongside p50"
        f" {static[49] * 1000:.1f} ms p99 {static[98] * 1000:.1f} ms; slowest (s, sent at s):"
        f" {[(round(a, 3), round(b, 1)) for a, b in sorted(slowest, reverse=True)[:3]]}"
    )
