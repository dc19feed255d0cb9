"""Issue 3: sagactl's runtime on the workload DAGs, durable on SQLite, against the baselines."""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .floor import CommitFloor
from .pairing import paired
from .stack_floor import StackFloor
from .workloads import BUILD, WIDE_SIZE, chain, independent

IN_FLIGHT = 500
FLOOR_COMMITS = 500
"""Bare commits timed between two rounds of the 500 sagas (enough for a stable rate)."""


def _service(runner: asyncio.Runner, path: Path, *, commit_on_loop: bool) -> Any:
    try:
        from .engine_runner import EngineService
    except ImportError as exc:
        pytest.skip(f"sagactl's runtime API (sagactl.engine.api.Engine) is not here yet: {exc}")
    return EngineService(runner, path, checked=BUILD, commit_on_loop=commit_on_loop)


@pytest.fixture
def engine(runner: asyncio.Runner, tmp_path: Path) -> Iterator[Any]:
    """An open engine on a fresh SQLite log, with the no-op action installed; it commits
    on its writer thread, as an engine embedded in an application does by default."""
    service = _service(runner, tmp_path / "sagactl.sqlite", commit_on_loop=False)
    yield service
    service.close()


@pytest.fixture
def engine_on_loop(runner: asyncio.Runner, tmp_path: Path) -> Iterator[Any]:
    """The same, committing on its event loop, as the CLI's engines do."""
    service = _service(runner, tmp_path / "sagactl.sqlite", commit_on_loop=True)
    yield service
    service.close()


def _succeeded(path: Path) -> int:
    """Runs in the log, all of which must have succeeded; the log must be in WAL mode."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT state, count(*) FROM runs GROUP BY state").fetchall()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    states = dict(rows)
    assert set(states) <= {"succeeded"}, states
    return int(states.get("succeeded", 0))


class TestEngine:
    def test_one_build_saga(self, benchmark: Any, engine: Any, floor: CommitFloor) -> None:
        """One 11-action build DAG at a time, durable per action; the floor between rounds."""
        result = paired(
            benchmark,
            engine.run,
            lambda: floor.commit_each(len(BUILD)),
            prepare=lambda: (BUILD,),
            key="sagactl_build",
            units=len(BUILD),
            baseline_key="floor_build",
            baseline_units=len(BUILD),
            rounds=30,
        )
        assert result.ok and len(result.actions) == len(BUILD)
        assert _succeeded(engine.path) == 30

    def test_one_build_saga_checked(
        self, benchmark: Any, engine: Any, floor: CommitFloor, tmp_path: Path
    ) -> None:
        """Issue 14: the 11-action build DAG of a plugin's schema-checked actions (closed
        input and output schemas, checked on every call), one saga at a time on one open
        engine; the floor between rounds; the process's CPU time per action."""
        _checked_rounds(benchmark, engine, floor, "sagactl_build_checked", tmp_path)

    def test_one_build_saga_checked_on_loop(
        self, benchmark: Any, engine_on_loop: Any, floor: CommitFloor, tmp_path: Path
    ) -> None:
        """The same, with the engine committing on its loop (`commit_on_loop`), as the
        CLI's engines do."""
        _checked_rounds(benchmark, engine_on_loop, floor, "sagactl_build_checked_on_loop", tmp_path)

    def test_many_sagas_in_flight(self, benchmark: Any, engine: Any, floor: CommitFloor) -> None:
        """500 build sagas at once in one process: concurrent log writes share commits."""
        results = paired(
            benchmark,
            engine.run_many,
            lambda: floor.commit_each(FLOOR_COMMITS),
            prepare=lambda: (BUILD, IN_FLIGHT),
            key="sagactl_500",
            units=IN_FLIGHT * len(BUILD),
            baseline_key="floor_500",
            baseline_units=FLOOR_COMMITS,
            rounds=3,
        )
        benchmark.extra_info["sagas"] = IN_FLIGHT
        assert len(results) == IN_FLIGHT and all(r.ok for r in results)
        assert _succeeded(engine.path) == 3 * IN_FLIGHT

    def test_independent_vs_chain(self, benchmark: Any, engine: Any) -> None:
        """300 independent no-op actions in one saga; a 300-chain saga between rounds."""
        wide, narrow = independent(), chain()
        result = paired(
            benchmark,
            engine.run,
            lambda: engine.run(narrow),
            prepare=lambda: (wide,),
            key="sagactl_independent",
            units=WIDE_SIZE,
            baseline_key="sagactl_chain",
            baseline_units=WIDE_SIZE,
            rounds=5,
        )
        assert result.ok and len(result.actions) == WIDE_SIZE
        assert _succeeded(engine.path) == 2 * 5


class _KernelCpu:
    """The process's CPU time in the kernel, summed over the blocks timed with it.

    Summed, not a median per round: Linux splits a process's CPU time between user and
    kernel by sampling at the clock tick, too coarse for one round of a few ms."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = resource.getrusage(resource.RUSAGE_SELF).ru_stime

    def __exit__(self, *exc: object) -> None:
        self.seconds += resource.getrusage(resource.RUSAGE_SELF).ru_stime - self._start


def _checked_rounds(
    benchmark: Any, engine: Any, floor: CommitFloor, key: str, tmp_path: Path
) -> None:
    """100 checked build sagas on `engine`, the floor between rounds, CPU per action;
    and the stack floor's CPU per action, one of its sagas untimed before each round."""
    engine.run(BUILD, checked=True)  # the validators are built once, not timed
    stack = StackFloor(tmp_path / "stack-floor.sqlite", BUILD)
    stack.run()
    cpu: list[float] = []
    floor_cpu: list[float] = []
    stack_cpu: list[float] = []
    commits: list[int] = []
    stack_commits = stack.commits
    kernel, floor_kernel = _KernelCpu(), _KernelCpu()

    def stack_saga() -> None:
        start = time.process_time()
        stack.run()
        stack_cpu.append(time.process_time() - start)

    def run() -> Any:
        before = engine.commits
        with kernel:
            start = time.process_time()
            result = engine.run(BUILD, checked=True)
            cpu.append(time.process_time() - start)
        commits.append(engine.commits - before)
        return result

    def floor_commits() -> None:
        # The floor's CPU too: on a VM, an fsync'd commit's own CPU swings with the
        # disk's load, and the engine's figure carries one such commit per 1-2 actions.
        with floor_kernel:
            start = time.process_time()
            floor.commit_each(len(BUILD))
            floor_cpu.append(time.process_time() - start)

    result = paired(
        benchmark,
        run,
        floor_commits,
        key=key,
        units=len(BUILD),
        baseline_key=key.replace("sagactl_", "floor_"),
        baseline_units=len(BUILD),
        rounds=100,
        settle=stack_saga,
    )
    benchmark.extra_info["stack_floor_cpu_per_action"] = statistics.median(stack_cpu) / len(BUILD)
    benchmark.extra_info["cpu_per_action"] = statistics.median(cpu) / len(BUILD)
    benchmark.extra_info["floor_cpu_per_action"] = statistics.median(floor_cpu) / len(BUILD)
    # The kernel's part apart: on a VM most of an fsync'd commit's CPU is the kernel's,
    # out of any engine's reach (the floor's commits without the fsync take a tenth of it).
    benchmark.extra_info["kernel_cpu_per_action"] = kernel.seconds / (len(cpu) * len(BUILD))
    benchmark.extra_info["floor_kernel_cpu_per_action"] = floor_kernel.seconds / (
        len(floor_cpu) * len(BUILD)
    )
    # The log's commits are the design's (intent before each action, outputs after); with
    # them the engine's own CPU per action can be told apart from the fsyncs' on any VM.
    benchmark.extra_info["commits_per_action"] = sum(commits) / (len(commits) * len(BUILD))
    assert result.ok and len(result.actions) == len(BUILD)
    assert _succeeded(engine.path) == 101
    # The stack floor stands for the engine's commits only if it makes as many, each run
    # to its end with a record per action's intent and success, and its creation and end.
    assert (stack.commits - stack_commits) / (len(stack_cpu) * len(BUILD)) == (
        benchmark.extra_info["commits_per_action"]
    )
    assert set(stack.runs()) == {("succeeded", 2 * len(BUILD) + 2)}
    stack.close()
