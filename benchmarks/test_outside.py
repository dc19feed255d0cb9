"""Issue 14: the 300-action chain and the 300-wide saga run by `sagactl run`, as a user
meets them (a new process; the live view on a terminal, or plain lines on a pipe),
against the bare fsync'd-commit loop timed just before each round (one commit per action).

Each run is timed by its own stamps (first record to last: the engine's part) and by the
process's wall time (start-up and compilation too).

    .venv/bin/pytest benchmarks/test_outside.py --benchmark-only
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from .floor import CommitFloor
from .outside import install_plugin, run_outside, saga_file
from .pairing import paired

SIZE = 300
ROUNDS = 5
pytestmark = pytest.mark.timeout(1800)  # a loaded machine makes each run tens of seconds


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The plugin on PYTHONPATH, a warm entry-point cache, INFO logs off (the default)."""
    folder = tmp_path_factory.mktemp("outside")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    environ.update(
        PYTHONPATH=str(install_plugin(folder / "plugin")), XDG_CACHE_HOME=str(folder / "cache")
    )
    return environ


@pytest.mark.parametrize(
    ("key", "chained", "terminal"),
    [
        ("outside_chain_tty", True, True),
        ("outside_chain_pipe", True, False),
        ("outside_wide_tty", False, True),
    ],
)
def test_outside(
    benchmark: Any,
    env: dict[str, str],
    floor: CommitFloor,
    tmp_path: Path,
    key: str,
    chained: bool,
    terminal: bool,
) -> None:
    saga = saga_file(tmp_path, key.replace("_", "-"), SIZE, chained=chained)
    db = tmp_path / "runs.sqlite"
    run_outside(saga, db, env, terminal=terminal)  # the store made, the plugin cache warm
    runs = []

    def one() -> None:
        runs.append(run_outside(saga, db, env, terminal=terminal))

    paired(
        benchmark,
        one,
        lambda: floor.commit_each(SIZE),
        key=key,
        units=SIZE,
        baseline_key=f"{key}_floor",
        baseline_units=SIZE,
        rounds=ROUNDS,
    )
    assert all(r.code == 0 and r.records == 2 * SIZE + 3 for r in runs), runs
    benchmark.extra_info["stamps_per_action"] = statistics.median(r.stamps for r in runs) / SIZE
