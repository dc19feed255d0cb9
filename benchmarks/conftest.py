"""Shared benchmark fixtures, and the session-end table of the ratios issues 3 and 4 ask for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .floor import CommitFloor
from .report import lines, results_from

_RESULTS = pytest.StashKey[list[dict[str, Any]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS] = []


@pytest.fixture(autouse=True)
def _record_result(request: pytest.FixtureRequest) -> Iterator[None]:
    """Keeps each benchmark's median and extra_info for the summary below."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    bench = request.getfixturevalue("benchmark")
    yield
    if bench.stats is not None and "key" in bench.extra_info:
        request.config.stash[_RESULTS].append(
            {"extra_info": dict(bench.extra_info), "stats": {"median": bench.stats.stats.median}}
        )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    recorded = config.stash.get(_RESULTS, [])
    if not recorded:
        return
    terminalreporter.section("sagactl ratios (medians, this run)")
    for line in lines(results_from(recorded)):
        terminalreporter.write_line(line)


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    """One event loop kept across a benchmark's rounds, so loop start-up is not timed."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture
def floor(tmp_path: Path) -> Iterator[CommitFloor]:
    """The bare fsync'd-commit loop on a fresh SQLite file."""
    commit_floor = CommitFloor(tmp_path / "floor.sqlite")
    yield commit_floor
    commit_floor.close()
