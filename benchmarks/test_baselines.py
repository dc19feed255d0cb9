"""Baselines (a) and (b): plain calls of the no-op actions, and one fsync'd commit per action."""

from __future__ import annotations

from typing import Any

from .floor import CommitFloor
from .workloads import BUILD, plain_plan, run_plain


class TestBaselines:
    def test_plain_calls(self, benchmark: Any) -> None:
        """(a) The 11 no-op functions called directly in topological order."""
        benchmark.extra_info.update(key="plain_build", units=len(BUILD))
        outputs = benchmark(run_plain, plain_plan(BUILD))
        assert set(outputs) == set(BUILD.needs)

    def test_fsync_floor(self, benchmark: Any, floor: CommitFloor) -> None:
        """(b) A bare loop: one INSERT per fsync'd commit (WAL, synchronous=FULL), 11 per round."""
        assert floor.settings() == ("wal", 2)
        benchmark.extra_info.update(key="floor_commit", units=len(BUILD))
        benchmark(floor.commit_each, len(BUILD))
        assert floor.rows() % len(BUILD) == 0 and floor.rows() > 0
