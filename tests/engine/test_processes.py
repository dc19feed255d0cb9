"""Several processes sharing one SQLite file: runs side by side, takeover of a dead owner."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from sagactl.engine.api import Engine
from sagactl.engine.store import RunBusy

from .sagas import Journal, Script, Step, make_saga

DRIVER = textwrap.dedent(
    """
    import sys, anyio
    sys.path.insert(0, {tests!r})
    from sagas import Journal, Script, Step, make_saga
    from sagactl.engine.api import Engine

    DAG = {{"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}}

    async def main(db, prefix, count, hold):
        script = Script(sleep={{"b": 0.002}})
        async with Engine(db, actions={{"step": Step(Journal(), script)}}) as engine:
            if hold:
                script.hang.add("b")
                script.entered["b"] = anyio.Event()
                async with anyio.create_task_group() as group:
                    group.start_soon(lambda: engine.run(make_saga(DAG), run_id=prefix))
                    await script.entered["b"].wait()
                    print("holding", flush=True)
                    sys.stdin.readline()
                    import os
                    os._exit(9)
            async with anyio.create_task_group() as group:
                for i in range(count):
                    run_id = f"{{prefix}}{{i}}"
                    group.start_soon(lambda r=run_id: engine.run(make_saga(DAG), run_id=r))

    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "hold")
    """
)

DAG = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def driver(tmp_path: Path) -> Path:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(Path(__file__).parent)))
    return script


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def run_ours(path: Path, count: int) -> None:
    async with (
        Engine(path, actions={"step": Step(Journal(), Script())}) as engine,
        anyio.create_task_group() as group,
    ):
        for i in range(count):
            group.start_soon(lambda i=i: engine.run(make_saga(DAG), run_id=f"ours{i}"))


async def check_all_succeeded(path: Path, count: int) -> None:
    async with Engine(path) as engine:
        runs = await engine.list_runs()
        assert len(runs) == count and {r.state for r in runs} == {"succeeded"}
        for run in runs:
            log = await engine.log(run.run_id)
            assert [r.seq for r in log] == list(range(1, len(log) + 1))


async def busy_then_take_over(path: Path, other: subprocess.Popen[str]) -> None:
    assert other.stdin is not None
    async with Engine(path, actions={"step": Step(Journal())}) as engine:
        with pytest.raises(RunBusy):
            await engine.resume("held")
        assert await engine.resume_all() == []
        other.stdin.write("die\n")
        other.stdin.flush()
        assert await anyio.to_thread.run_sync(lambda: other.wait(timeout=30)) == 9
        result = await engine.resume("held")
        assert result.ok and result.actions["b"].attempts == 2


@pytest.mark.slow
class TestSharedFile:
    def test_two_processes_run_sagas_on_one_file_at_once(self, tmp_path: Path) -> None:
        """Another process and this one each drive 20 runs concurrently on one file."""
        path = tmp_path / "runs.db"
        other = subprocess.Popen(
            [sys.executable, str(driver(tmp_path)), str(path), "theirs", "20", "go"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            anyio.run(run_ours, path, 20)
        finally:
            _, err = other.communicate(timeout=60)
        assert other.returncode == 0, err
        anyio.run(check_all_succeeded, path, 40)
        assert integrity(path) == "ok"

    def test_a_killed_owner_is_taken_over_and_a_live_one_is_not(self, tmp_path: Path) -> None:
        """While the other process lives its run is busy; once it is killed, resume wins."""
        path = tmp_path / "runs.db"
        other = subprocess.Popen(
            [sys.executable, str(driver(tmp_path)), str(path), "held", "1", "hold"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert other.stdout is not None
            assert other.stdout.readline().strip() == "holding", other.stderr
            anyio.run(busy_then_take_over, path, other)
        finally:
            if other.poll() is None:
                other.kill()
            other.communicate(timeout=30)
        assert integrity(path) == "ok"
