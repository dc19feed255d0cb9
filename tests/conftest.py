"""The whole suite's temporary files on tmpfs (RAM) when the machine has one, and
Ctrl-C delivered to the processes tests start however the suite was launched.

The suite's SQLite stores commit with `synchronous=FULL`: on a disk every commit waits for
an fsync (milliseconds each, far more on a busy machine), and the crash rehearsals and CLI
tests make tens of thousands of them. No test can tell a durable fsync from a no-op one:
the tests kill processes, never the machine, and the kernel keeps what a killed process
wrote. So pytest's tmp_path, `tempfile` and every subprocess (via TMPDIR) use
/dev/shm/sagactl-tests. A TMPDIR set by the caller is kept; so is the disk when /dev/shm
has less than `TMPFS_FREE` free. What is large (the stack base images of the build tests)
stays on disk, under `$SAGACTL_TEST_DISK_TMP` (tests/build_saga/conftest.py `stack_store`).
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

TMPFS = Path("/dev/shm")
TMPFS_FREE = 4 << 30
"""Bytes /dev/shm must have free to be used (the suite's files, without the stack bases)."""


def _use_tmpfs() -> None:
    # The disk's temporary directory, for what is too large for RAM (set once: xdist
    # workers inherit it, and TMPDIR, from the controller).
    os.environ.setdefault("SAGACTL_TEST_DISK_TMP", tempfile.gettempdir())
    if "TMPDIR" in os.environ or not TMPFS.is_dir() or not os.access(TMPFS, os.W_OK):
        return
    stats = os.statvfs(TMPFS)
    if stats.f_bavail * stats.f_frsize < TMPFS_FREE:
        return
    root = TMPFS / "sagactl-tests"
    root.mkdir(mode=0o1777, exist_ok=True)
    # Set before pytest picks its base temp dir (on first use) and inherited by xdist
    # workers and every subprocess; `tempfile` caches its answer, so reset that too.
    os.environ["TMPDIR"] = str(root)
    tempfile.tempdir = None


_use_tmpfs()


def _interruptible() -> None:
    # A shell started without job control (`scripts/test &`, some CI runners) starts its
    # background commands with SIGINT ignored, and an ignored signal stays ignored across
    # exec: every `sagactl` a test starts would then ignore the Ctrl-C the test sends it.
    # Python's own handler is reset to the default at exec, so children get the terminal's.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_interruptible()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files whose tests allow the longest time (a `timeout` mark) run first, each file's
    tests kept together and in order: with `-n 2 --dist loadfile --no-loadscope-reorder`
    (scripts/test) a long file then starts at once instead of being the last to finish."""
    longest: dict[Path, float] = {}
    for item in items:
        mark = item.get_closest_marker("timeout")
        limit = mark.kwargs.get("timeout", mark.args[0] if mark.args else 0) if mark else 0
        longest[item.path] = max(longest.get(item.path, 0.0), float(limit or 0))
    items.sort(key=lambda item: -longest[item.path])
