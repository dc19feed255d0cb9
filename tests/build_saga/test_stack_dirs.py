"""The sweep of test stack stores that a killed session left behind (stack_dirs.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stack_dirs import PREFIX, make_owned, sweep_abandoned


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_store_whose_process_is_gone_is_removed_and_a_live_one_is_kept(tmp_path: Path) -> None:
    live = make_owned(tmp_path)
    (live / "work").mkdir()
    dead = tmp_path / f"{PREFIX}{_dead_pid()}-abc"
    (dead / "overlay-root" / "deep").mkdir(parents=True)
    legacy = tmp_path / f"{PREFIX}q1w2e3"
    legacy.mkdir()
    unrelated = tmp_path / "someone-else"
    unrelated.mkdir()

    removed = sweep_abandoned(tmp_path)

    assert sorted(removed) == sorted([dead, legacy])
    assert live.is_dir() and (live / "work").is_dir()
    assert not dead.exists() and not legacy.exists()
    assert unrelated.is_dir()
