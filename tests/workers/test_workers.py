"""Worker processes on one PostgreSQL database: sharing, crashes, pauses, graceful stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sagactl.engine.api import Engine
from sagactl.engine.store.postgres import PostgresStore

from .conftest import wait_for
from .effects import ACTIONS, LOG_ENV, chain_saga

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

PROC = Path(__file__).with_name("worker_proc.py")
LEASE = 2.0


class Workers:
    """Worker processes of one test, each with its own stdout and stderr files."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.log = tmp / "effects.log"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 4, poll: float = 0.25) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        env = dict(os.environ, SAGACTL_LEASE=str(LEASE), **{LOG_ENV: str(self.log)})
        with (self.tmp / f"w{n}.out").open("wb") as out, (self.tmp / f"w{n}.err").open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-P", str(PROC), self.url, str(concurrency), str(poll)],
                stdout=out,
                stderr=err,
                env=env,
            )
        self.procs.append(proc)
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        """What the worker logged (structlog writes to stdout)."""
        return (self.tmp / f"w{self.procs.index(proc)}.out").read_text()

    def stats(self, proc: subprocess.Popen[bytes]) -> dict[str, int]:
        out = (self.tmp / f"w{self.procs.index(proc)}.out").read_text().strip()
        return dict(json.loads(out.splitlines()[-1]))

    def started(self) -> list[tuple[str, str, int]]:
        """(run, action, pid) of every action execution begun so far."""
        if not self.log.exists():
            return []
        lines = [line.split() for line in self.log.read_text().splitlines()]
        return [(run, action, int(pid)) for run, action, pid, _ in lines]

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=30)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(pg_url: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(pg_url, tmp_path)
    try:
        yield group
    finally:
        group.close()


async def effects(store: PostgresStore) -> list[tuple[str, str, int]]:
    """Every committed effect: (run, action, pid)."""
    async with await store._connect(autocommit=True) as conn:
        cursor = await conn.execute("SELECT run_id, action, pid FROM effects ORDER BY at")
        return [(r, a, int(p)) for r, a, p in await cursor.fetchall()]


class TestManyWorkers:
    async def test_200_runs_on_4_workers_each_action_once(
        self, pg_url: str, workers: Workers
    ) -> None:
        """4 worker processes drain 200 queued runs: every action's effect exactly once."""
        saga = chain_saga(("a", 0), ("b", 0), ("c", 0))
        async with Engine(pg_url, actions=ACTIONS) as engine:
            procs = [workers.start(concurrency=8) for _ in range(4)]
            ids = [await engine.start(saga) for _ in range(200)]
            store = engine.store
            assert isinstance(store, PostgresStore)

            async def all_done() -> bool:
                return len(await store.list_runs(states=["succeeded"])) == 200

            await wait_for(all_done, within=90, every=0.2)
            done = await effects(store)
            counts = await store.stats()
        assert sorted((r, a) for r, a, _ in done) == sorted(
            (r, a) for r in ids for a in ("a", "b", "c")
        )
        assert counts["succeeded"] == 200 and counts["taken_over"] == 0
        assert len({pid for _, _, pid in done}) > 1  # the work was shared
        claimed = 0
        for proc in procs:
            assert workers.stop(proc) == 0
            claimed += workers.stats(proc)["claimed"]
        assert claimed == 200  # no run claimed twice


class TestCrashes:
    async def test_sigkill_mid_action_is_taken_over_after_the_lease(
        self, pg_url: str, workers: Workers
    ) -> None:
        """A worker killed inside an action: another takes the run after the lease and ends it."""
        saga = chain_saga(("a", 0), ("slow", 1.5), ("c", 0))
        async with Engine(pg_url, actions=ACTIONS) as engine:
            store = engine.store
            assert isinstance(store, PostgresStore)
            first = workers.start()
            run_id = await engine.start(saga)

            async def in_slow() -> bool:
                return (run_id, "slow", first.pid) in workers.started()

            await wait_for(in_slow, within=30)
            lease = (await store.get_run(run_id)).lease_expires
            first.kill()
            killed = time.time()
            second = workers.start()

            async def taken() -> float | None:
                run = await store.get_run(run_id)
                return time.time() if run.owner not in (None, first_owner) else None

            first_owner = (await store.get_run(run_id)).owner
            took = await wait_for(taken, within=30)
            result = await wait_for(lambda: _finished(engine, run_id), within=30, every=0.1)
            done = await effects(store)
            counts = await store.stats()
        assert result == "succeeded"
        assert sorted(a for r, a, _ in done if r == run_id) == ["a", "c", "slow"]
        assert [pid for _, a, pid in done if a == "slow"] == [second.pid]
        assert counts["taken_over"] == 1 and counts["recovered"] == 1
        assert lease is not None
        print(
            f"\nSIGKILL: lease {LEASE}s; kill->takeover {took - killed:.2f}s,"
            f" lease expiry->takeover {took - max(lease, killed):.2f}s"
        )
        assert workers.stop(second) == 0

    async def test_sigstop_past_the_lease_writes_nothing_after_sigcont(
        self, pg_url: str, workers: Workers
    ) -> None:
        """A paused worker loses its run; resumed, its writes are refused: no duplicate effect."""
        saga = chain_saga(("a", 0), ("slow", 1.0), ("c", 0))
        async with Engine(pg_url, actions=ACTIONS) as engine:
            store = engine.store
            assert isinstance(store, PostgresStore)
            stale = workers.start()
            run_id = await engine.start(saga)

            async def in_slow() -> bool:
                return (run_id, "slow", stale.pid) in workers.started()

            await wait_for(in_slow, within=30)
            stale.send_signal(signal.SIGSTOP)
            stale_owner = (await store.get_run(run_id)).owner
            fresh = workers.start()

            async def taken() -> bool:
                return (await store.get_run(run_id)).owner not in (None, stale_owner)

            await wait_for(taken, within=30)
            stale.send_signal(signal.SIGCONT)
            result = await wait_for(lambda: _finished(engine, run_id), within=30, every=0.1)

            async def gave_up() -> bool:
                return "run lost to another worker" in workers.output(stale)

            await wait_for(gave_up, within=10)
            done = await effects(store)
        assert result == "succeeded"
        assert sorted(a for _, a, _ in done) == ["a", "c", "slow"]  # once each
        assert [pid for _, a, pid in done if a != "a"] == [fresh.pid, fresh.pid]
        assert workers.stop(stale) == 0
        assert workers.stats(stale)["lost"] == 1
        assert workers.stop(fresh) == 0


class TestShutdown:
    async def test_sigterm_lets_the_runs_in_hand_finish(
        self, pg_url: str, workers: Workers
    ) -> None:
        """SIGTERM mid-action: the worker claims nothing more but finishes the run it holds."""
        saga = chain_saga(("a", 0), ("short", 1.0), ("c", 0))
        async with Engine(pg_url, actions=ACTIONS) as engine:
            first = workers.start()
            run_id = await engine.start(saga)

            async def in_short() -> bool:
                return (run_id, "short", first.pid) in workers.started()

            await wait_for(in_short, within=30)
            first.send_signal(signal.SIGTERM)

            async def stopping() -> bool:
                return "stopping" in workers.output(first)

            await wait_for(stopping, within=10)
            later = await engine.start(saga)
            assert first.wait(timeout=20) == 0
            assert (await engine.store.get_run(run_id)).state == "succeeded"
            assert (await engine.store.get_run(later)).state == "queued"  # not claimed
            assert workers.stats(first)["handed_back"] == 0

    async def test_sigterm_hands_back_a_run_that_does_not_finish_in_time(
        self, pg_url: str, workers: Workers
    ) -> None:
        """SIGTERM with a long action in hand: the run is handed back and another ends it."""
        saga = chain_saga(("a", 0), ("long", 30.0), ("c", 0))
        async with Engine(pg_url, actions=ACTIONS) as engine:
            store = engine.store
            assert isinstance(store, PostgresStore)
            first = workers.start()
            run_id = await engine.start(saga)

            async def in_long() -> bool:
                return (run_id, "long", first.pid) in workers.started()

            await wait_for(in_long, within=30)
            first.send_signal(signal.SIGTERM)

            async def stopping() -> bool:
                return "stopping" in workers.output(first)

            await wait_for(stopping, within=10)  # signals do not queue: one at a time
            first.send_signal(signal.SIGTERM)  # a second signal: hand back at once
            assert first.wait(timeout=5) == 0
            run = await store.get_run(run_id)
            assert (run.owner, run.state) == (None, "running")
            assert workers.stats(first)["handed_back"] == 1
            assert await effects(store) == [(run_id, "a", first.pid)]


async def _finished(engine: Engine, run_id: str) -> str | None:
    state = (await engine.store.get_run(run_id)).state
    return state if state in ("succeeded", "compensated", "stuck", "cancelled") else None
