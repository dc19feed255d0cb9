"""Peers (c) and (d): the 11-action build DAG on TaskFlow and on DBOS, both durable on SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .workloads import BUILD


def _journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


@pytest.fixture
def taskflow_runner(tmp_path: Path) -> Iterator[Any]:
    pytest.importorskip("taskflow", reason="TaskFlow is not installed (pip install -e '.[bench]')")
    pytest.importorskip("alembic", reason="TaskFlow's SQL backend needs alembic ('.[bench]')")
    from .taskflow_runner import TaskflowRunner

    flow_runner = TaskflowRunner(BUILD, tmp_path / "taskflow.sqlite")
    yield flow_runner
    flow_runner.close()


@pytest.fixture
def dbos_runner(tmp_path: Path) -> Iterator[Any]:
    pytest.importorskip("dbos", reason="DBOS Transact is not installed (pip install -e '.[bench]')")
    from .dbos_runner import DbosRunner

    workflow_runner = DbosRunner(BUILD, tmp_path / "dbos.sqlite")
    yield workflow_runner
    workflow_runner.close()


class TestPeers:
    # oslo.utils (a TaskFlow dependency) warns about its own eventlet helpers on import.
    @pytest.mark.filterwarnings("ignore:eventletutils module is deprecated:DeprecationWarning")
    def test_taskflow(self, benchmark: Any, taskflow_runner: Any, tmp_path: Path) -> None:
        """(c) TaskFlow's parallel engine, SQLAlchemy persistence on an SQLite file."""
        benchmark.extra_info.update(key="taskflow_build", units=len(BUILD))
        results = benchmark(taskflow_runner.run)
        assert set(BUILD.needs) <= set(results)
        # TaskFlow keeps SQLite's defaults: a rollback journal with synchronous=FULL.
        benchmark.extra_info["journal_mode"] = _journal_mode(tmp_path / "taskflow.sqlite")

    def test_dbos(
        self, benchmark: Any, dbos_runner: Any, runner: asyncio.Runner, tmp_path: Path
    ) -> None:
        """(d) DBOS: one workflow, 11 steps, each layer of the DAG gathered at once."""
        benchmark.extra_info.update(key="dbos_build", units=len(BUILD))
        outputs = benchmark(lambda: runner.run(dbos_runner.run()))
        assert set(outputs) == set(BUILD.needs)
        with sqlite3.connect(tmp_path / "dbos.sqlite") as conn:
            steps = conn.execute("SELECT count(*) FROM operation_outputs").fetchone()[0]
        assert steps > 0 and steps % len(BUILD) == 0
        benchmark.extra_info["journal_mode"] = _journal_mode(tmp_path / "dbos.sqlite")
