"""`sagactl worker`, `stats` and `db upgrade`, run as the installed command in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine.api import Engine

from .effects import ACTIONS, chain_saga

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

SAGACTL = [str(Path(sys.executable).parent / "sagactl")]


def sagactl(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SAGACTL_DB"}
    return subprocess.run(
        [*SAGACTL, *args], capture_output=True, text=True, timeout=60, env=env, **kw
    )  # type: ignore[call-overload,no-any-return]


class TestDbUpgrade:
    def test_upgrade_migrates_an_empty_database(self, pg_url: str) -> None:
        """db upgrade applies every migration and says which versions are in place."""
        done = sagactl("db", "upgrade", "--db", pg_url)
        assert done.returncode == 0, done.stderr
        assert "engine v15" in done.stdout

    def test_many_workers_may_migrate_at_once(self, pg_url: str) -> None:
        """Six upgrades started together on an empty database all succeed (advisory lock)."""
        env = {k: v for k, v in os.environ.items() if k != "SAGACTL_DB"}
        procs = [
            subprocess.Popen(
                [*SAGACTL, "db", "upgrade", "--db", pg_url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(6)
        ]
        outcomes = [(p.wait(timeout=60), p.communicate()) for p in procs]
        assert [code for code, _ in outcomes] == [0] * 6, outcomes


class TestStats:
    async def test_stats_json_counts_runs(self, pg_url: str) -> None:
        """stats --json reports the counters read from the store."""
        async with Engine(pg_url, actions=ACTIONS) as engine:
            await engine.run(chain_saga(("a", 0)))
            await engine.start(chain_saga(("a", 0)))
        done = sagactl("stats", "--json", "--db", pg_url)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {
            "started": 1,
            "succeeded": 1,
            "compensated": 0,
            "stuck": 0,
            "recovered": 0,
            "taken_over": 0,
            "stuck_over_1h": 0,
            "stuck_over_1d": 0,
            "stuck_over_7d": 0,
            "oldest_stuck_seconds": 0,
        }
        text = sagactl("stats", "--db", pg_url)
        assert "taken over           0" in text.stdout

    def test_stats_on_sqlite(self, tmp_path: Path) -> None:
        """The counters exist on SQLite too."""
        done = sagactl("stats", "--json", "--db", f"sqlite://{tmp_path / 'x.db'}")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["started"] == 0


class TestWorkerCommand:
    def test_worker_on_sqlite_is_refused(self, tmp_path: Path) -> None:
        """sagactl worker needs PostgreSQL: exit 2 with one line, no traceback."""
        done = sagactl("worker", "--db", f"sqlite://{tmp_path / 'x.db'}")
        assert done.returncode == 2
        assert "need a shared PostgreSQL store" in done.stderr
        assert "Traceback" not in done.stderr

    def test_sigterm_stops_an_idle_worker_cleanly(self, pg_url: str) -> None:
        """An idle `sagactl worker` (listening) exits 0 on SIGTERM, without waiting its poll."""
        import psycopg

        proc = subprocess.Popen(
            [*SAGACTL, "worker", "--db", pg_url, "--poll", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                deadline = time.monotonic() + 30
                # This worker's LISTEN, not another process's on the same database.
                while not _listens_from(conn, proc.pid):
                    assert time.monotonic() < deadline, "the worker never listened"
                    time.sleep(0.05)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert time.monotonic() - started < 5  # not the 30 s poll
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


class TestOpsViews:
    async def test_list_and_status_show_the_holder(self, pg_url: str) -> None:
        """list --json and status name the worker holding a run, its lease and its node."""
        from sagactl.engine.store.postgres import PostgresStore

        async with Engine(pg_url, actions=ACTIONS) as engine:
            await engine.start(chain_saga(("a", 0)), run_id="held-1", node="node-a")
        async with PostgresStore(pg_url, lease=60, node="node-a") as holder:
            assert [c.run_id for c in await holder.claim_next(1)] == ["held-1"]
            listed = sagactl("list", "--json", "--db", pg_url)
            shown = sagactl("status", "held-1", "--db", pg_url)
        assert listed.returncode == 0, listed.stderr
        (row,) = [r for r in json.loads(listed.stdout) if r["run_id"] == "held-1"]
        assert row["owner"] and row["node"] == "node-a"
        assert row["lease_expires"] > time.time() + 30
        assert shown.returncode == 0, shown.stderr
        assert f"owner {row['owner']}" in shown.stdout and "pinned to node-a" in shown.stdout


def _local_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process `pid` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _listens_from(conn: Any, pid: int) -> bool:
    ports = [
        row[0]
        for row in conn.execute(
            "SELECT client_port FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'LISTEN sagactl_runs%' AND client_port IS NOT NULL"
        ).fetchall()
    ]
    return bool(ports) and bool(set(ports) & _local_ports(pid))
