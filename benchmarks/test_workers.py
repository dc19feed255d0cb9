"""Issue 5: throughput of no-op 11-action sagas on 1, 2 and 4 PostgreSQL workers.

Measured against, in the same run: the SQLite single-process figure (one engine, the same
sagas in flight at once) and one bare PostgreSQL commit per action (the floor a durable
step costs on this server). Each round enqueues `SAGAS` runs and times until all succeeded.
"""

from __future__ import annotations

import asyncio
import importlib.util
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

from .wire import WireCounter
from .workloads import BUILD, NOOP_USES, NoopAction

SAGAS = 60
ACTIONS = SAGAS * len(BUILD)
PROC = Path(__file__).with_name("worker_proc.py")
_FIGURES: dict[str, float] = {}


SERVER = os.environ.get("SAGACTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> psycopg.Connection[Any]:
    """An autocommit connection to `$SAGACTL_TEST_PG` (the local server), or a skip."""
    try:
        return psycopg.connect(SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {SERVER}: {exc}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in `sagactl_test_pg` on `$SAGACTL_TEST_PG` (the local server)."""
    with _admin() as admin:
        if not admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = 'sagactl_test_pg'"
        ).fetchone():
            admin.execute("CREATE DATABASE sagactl_test_pg")
    url = SERVER.rsplit("/", 1)[0] + "/sagactl_test_pg"
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


# -- issue 14: the same 200 queued sagas on SQLite `resume --all` and on PostgreSQL workers --

QUEUED = 200
HOLD = "sagactl-bench-hold"
"""The node the queued runs are pinned to until the workers are listening: then one UPDATE
frees them all at once, so the clock starts with every run queued and every worker ready."""


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A database of its own, so `pg_stat_database` counts this benchmark's commits only."""
    name = f"sagactl_bench_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield SERVER.rsplit("/", 1)[0] + "/" + name
    finally:
        with _admin() as admin:
            for db in (name, f"{name}_dbos"):  # DBOS creates its own beside ours
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


async def _enqueue(db: str, node: str | None) -> None:
    saga = BUILD.compiled()
    async with Engine(db, actions={NOOP_USES: NoopAction()}) as engine:
        for _ in range(QUEUED):
            await engine.start(saga, node=node)


async def _sqlite_resume_all(path: Path) -> float:
    """`sagactl resume --all` in process: the queued runs driven at once, timed."""
    await _enqueue(f"sqlite:///{path}", None)
    async with Engine(f"sqlite:///{path}", actions={NOOP_USES: NoopAction()}) as engine:
        start = time.perf_counter()
        results = await engine.resume_all()
        elapsed = time.perf_counter() - start
    assert len(results) == QUEUED and {r.state for r in results} == {"succeeded"}
    return elapsed


def _xact_commits(conn: psycopg.Connection[Any], db: str) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    found = conn.execute(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (db,)
    ).fetchone()
    assert found is not None
    return int(found[0])


def _drain_queued(url: str, workers: int, wire: WireCounter) -> dict[str, float]:
    """The held runs freed at once and drained by `workers` processes talking through
    `wire`: seconds, round trips and commits (`pg_stat_database`) per action."""
    db = url.rsplit("/", 1)[1]
    anyio.run(_enqueue, url, HOLD)
    proxied = url.replace(":5432/", f":{wire.port}/")
    procs = _spawn(proxied, workers)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while (  # each worker listens once it is ready to claim
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                    " AND query LIKE 'LISTEN%%'",
                    (db,),
                ).fetchone()
                or (0,)
            )[0] < workers:
                time.sleep(0.05)
            polls = 0
            commits_before = _xact_commits(conn, db)
            wire.reset()
            start = time.perf_counter()
            conn.execute("UPDATE runs SET node = NULL WHERE node = %s", (HOLD,))
            conn.execute("NOTIFY sagactl_runs")
            while (
                conn.execute("SELECT count(*) FROM runs WHERE state = 'succeeded'").fetchone()
                or (0,)
            )[0] < QUEUED:
                polls += 1
                time.sleep(0.02)
            elapsed = time.perf_counter() - start
            round_trips = wire.round_trips
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    with psycopg.connect(url, autocommit=True) as conn:
        time.sleep(0.5)  # the workers' backends report their counts as they exit
        commits = _xact_commits(conn, db) - commits_before - polls - 3
    actions = QUEUED * len(BUILD)
    return {
        "seconds": elapsed,
        "round_trips_per_action": round_trips / actions,
        "commits_per_action": commits / actions,
    }


def _dbos_on_postgres(url: str) -> float:
    """DBOS Transact with its system database on the same server: the same 200 sagas, as
    many in flight as one sagactl worker drives (32)."""
    from .dbos_runner import DbosRunner

    dbos = DbosRunner(BUILD, url=url)
    try:

        async def all_runs() -> float:
            limit = asyncio.Semaphore(32)

            async def one() -> None:
                async with limit:
                    await dbos.run()

            await dbos.run()  # DBOS connects and warms up, untimed
            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(QUEUED)))
            return time.perf_counter() - start

        return asyncio.run(all_runs())
    finally:
        dbos.close()


class TestQueuedWorkers:
    @pytest.mark.parametrize("workers", [1, 2, 4])
    def test_queued(
        self, benchmark: Any, pg_db: str, tmp_path: Path, workers: int, request: Any
    ) -> None:
        """200 queued no-op build sagas: SQLite `resume --all`, then `workers` PostgreSQL
        workers (round trips and commits counted); with one worker, DBOS on the same server."""
        sqlite = anyio.run(_sqlite_resume_all, tmp_path / "log.db")
        server_port = int(pg_db.rsplit(":", 1)[1].split("/")[0])
        with WireCounter(server_port) as wire:
            drained = benchmark.pedantic(
                lambda: _drain_queued(pg_db, workers, wire), rounds=1, iterations=1
            )
        elapsed = drained["seconds"]
        per_saga = elapsed / QUEUED
        info: dict[str, float] = {
            "workers": workers,
            "sqlite_resume_all_s": sqlite,
            "ratio_to_sqlite": sqlite / elapsed,
            **drained,
        }
        line = (
            f"\n{workers} worker(s), {QUEUED} queued: {elapsed:.2f} s; SQLite resume --all"
            f" {sqlite:.2f} s (x{sqlite / elapsed:.2f}); {drained['round_trips_per_action']:.3f}"
            f" round trips/action, {drained['commits_per_action']:.3f} commits/action"
        )
        if workers == 1 and importlib.util.find_spec("dbos") is not None:
            dbos = _dbos_on_postgres(pg_db.rsplit("/", 1)[0] + f"/{pg_db.rsplit('/', 1)[1]}_dbos")
            info["dbos_s"] = dbos
            info["faster_than_dbos_per_saga"] = dbos / QUEUED / per_saga
            line += f"; DBOS on PostgreSQL {dbos:.2f} s (sagactl x{dbos / elapsed:.2f})"
        benchmark.extra_info.update(info)
        print(line)
