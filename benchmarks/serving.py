"""Helpers of the `sagactl serve` benchmarks: a server process, a plain HTTP file sink,
curl uploads, and a store bulk-loaded with runs."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

SAGACTL = str(Path(sys.executable).with_name("sagactl"))
SINK = Path(__file__).with_name("file_sink.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode}: {log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer at {url}: {log.read_text()}")


@contextmanager
def serve(root: Path, env: dict[str, str], *args: str) -> Iterator[tuple[str, int]]:
    """A `sagactl serve` process: yields its URL and pid."""
    port = free_port()
    log = root / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [SAGACTL, "serve", "--port", str(port), *args], env=env, stdout=out, stderr=out
        )
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz", proc, log)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def file_sink(path: Path) -> Iterator[str]:
    """The baseline's server: writes each request body to `path`, fsyncs, answers 200."""
    port = free_port()
    log = path.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(SINK), str(port), str(path)], stdout=out, stderr=out
        )
    try:
        wait_up(f"http://127.0.0.1:{port}/", proc, log)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(30)


def curl_upload(url: str, source: Path, *, body: bool = False) -> dict[str, Any]:
    """`curl -T FILE URL`: the answer's status and curl's own timings (and with `body`,
    the answer's JSON body merged in)."""
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "-" if body else "/dev/null",
            "-T",
            str(source),
            "-X",
            "POST",
            "-w",
            '\n{"code": %{http_code}, "total": %{time_total}}',
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    answer, _, timings = done.stdout.rpartition("\n")
    result: dict[str, Any] = json.loads(timings)
    if body:
        result.update(json.loads(answer))
    return result


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def bulk_load_runs(db: Path, count: int) -> None:
    """`count` finished runs straight into the store's tables (the schema made by opening
    a store first), in creation order, a few sagas and states."""
    states = ("succeeded", "compensated", "succeeded", "cancelled", "succeeded")
    now = time.time() - count
    definition = json.dumps({"format": 1, "name": "bulk", "actions": {}})
    rows = (
        (
            f"bulk-{i:07d}",
            f"saga-{i % 7}",
            states[i % len(states)],
            "h",
            definition,
            json.dumps({"app": f"app-{i % 1000}"}),
            "{}",
            now + i,
            now + i,
            now + i,
            now + i + 1,
            None,
            None,
            None,
            0,
            None,
        )
        for i in range(count)
    )
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO runs (run_id, saga, state, definition_hash, definition, inputs,"
            " plugin_versions, created, updated, started, finished, error, error_code, owner,"
            " cancel_requested, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    return {
        **env,
        "SAGACTL_DB": f"sqlite://{root / 'sagactl.db'}",
        "SAGACTL_BUILD_DIR": str(root / "build"),
        "SAGACTL_BUILDER": "oci",
        "SAGACTL_CLUSTER_HOST": "localhost",
    }
