"""Issue 5: throughput of no-op 11-action sagas on 1, 2 and 4 PostgreSQL workers.

Measured against, in the same run: the SQLite single-process figure (one engine, the same
sagas in flight at once) and one bare PostgreSQL commit per action (the floor a durable
step costs on this server). Each round enqueues `SAGAS` runs and times until all succeeded.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from sagactl.engine.api import Engine
from sagactl.engine.store.postgres import PostgresStore

from .workloads import BUILD, NOOP_USES, NoopAction

SAGAS = 60
ACTIONS = SAGAS * len(BUILD)
PROC = Path(__file__).with_name("worker_proc.py")
_FIGURES: dict[str, float] = {}


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in `sagactl_test_pg` on `$SAGACTL_TEST_PG` (the local server)."""
    server = os.environ.get("SAGACTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {server}: {exc}")
    with admin:
        if not admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = 'sagactl_test_pg'"
        ).fetchone():
            admin.execute("CREATE DATABASE sagactl_test_pg")
    url = server.rsplit("/", 1)[0] + "/sagactl_test_pg"
    name = f"b_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{url}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


async def _drain_on_workers(url: str, workers: int) -> float:
    """Seconds from the first enqueue to the last run succeeded, on `workers` processes."""
    saga = BUILD.compiled()
    procs = _spawn(url, workers)
    try:
        async with (
            PostgresStore(url) as store,
            Engine(store, actions={NOOP_USES: NoopAction()}) as engine,
        ):
            await anyio.sleep(1.5)  # the workers open and listen (untimed)
            start = time.perf_counter()
            for _ in range(SAGAS):
                await engine.start(saga)
            while len(await store.list_runs(states=["succeeded"])) < SAGAS:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            elapsed = time.perf_counter() - start
            await store.prune(finished_before=time.time() + 1)
        return elapsed
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)


def _spawn(url: str, workers: int) -> list[subprocess.Popen[bytes]]:
    argv = [sys.executable, "-P", str(PROC), url, "32"]
    return [subprocess.Popen(argv, stdout=subprocess.DEVNULL) for _ in range(workers)]


async def _sqlite_single_process(path: Path) -> float:
    saga = BUILD.compiled()
    async with Engine(f"sqlite:///{path}", actions={NOOP_USES: NoopAction()}) as engine:
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(SAGAS):
                tg.start_soon(engine.run, saga)
        return time.perf_counter() - start


def _bare_commits(url: str, count: int) -> float:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bare (n INTEGER)")
        conn.commit()
        start = time.perf_counter()
        for n in range(count):
            conn.execute("INSERT INTO bare VALUES (%s)", (n,))
            conn.commit()
        return time.perf_counter() - start


class TestWorkers:
    @pytest.mark.parametrize("workers", [1, 2, 4])
    def test_throughput(self, benchmark: Any, pg_url: str, tmp_path: Path, workers: int) -> None:
        """60 no-op build sagas drained by 1/2/4 worker processes; SQLite and a bare commit
        per action timed in the same test."""
        sqlite = anyio.run(_sqlite_single_process, tmp_path / "log.db")
        bare = _bare_commits(pg_url, ACTIONS)
        elapsed = benchmark.pedantic(
            lambda: anyio.run(_drain_on_workers, pg_url, workers), rounds=1, iterations=1
        )
        benchmark.extra_info.update(
            workers=workers,
            actions_per_s=ACTIONS / elapsed,
            sqlite_actions_per_s=ACTIONS / sqlite,
            ratio_to_sqlite=sqlite / elapsed,
            overhead_per_action_vs_bare_commit=(elapsed - bare) / ACTIONS,
            bare_commit_ms=bare / ACTIONS * 1e3,
        )
        print(
            f"\n{workers} worker(s): {ACTIONS / elapsed:.0f} actions/s;"
            f" SQLite 1 process {ACTIONS / sqlite:.0f} actions/s (x{sqlite / elapsed:.2f});"
            f" bare PG commit {bare / ACTIONS * 1e3:.2f} ms/action,"
            f" worker wall time per action {elapsed / ACTIONS * 1e3:.2f} ms"
        )
