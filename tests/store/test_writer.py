"""The SQLite group-commit writer: a failing request in a shared batch fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sagactl.engine.store.writer import GroupCommitWriter

pytestmark = pytest.mark.anyio


def _writer(path: Path) -> GroupCommitWriter:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        return conn

    writer = GroupCommitWriter(connect)
    writer.start()
    return writer


def _insert(value: int, *, fail: bool = False) -> Callable[[sqlite3.Connection], int]:
    def fn(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        if fail:
            raise ValueError(f"request {value} failed")
        return value

    return fn


class TestGroupCommitWriter:
    async def test_batch_without_failures_commits_once(self, tmp_path: Path) -> None:
        """Requests queued in one tick share one commit and all get their results."""
        writer = _writer(tmp_path / "w.db")
        try:
            await writer.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
            before = writer.commits
            results = await asyncio.gather(*(writer.submit(_insert(i)) for i in range(5)))
            assert results == [0, 1, 2, 3, 4]
            assert writer.commits == before + 1
            rows = await writer.submit(lambda c: c.execute("SELECT v FROM t").fetchall())
            assert sorted(r[0] for r in rows) == [0, 1, 2, 3, 4]
        finally:
            writer.stop()

    async def test_failing_request_rolls_back_only_its_writes(self, tmp_path: Path) -> None:
        """One request raising in a batch: its insert is undone, the others' are committed."""
        writer = _writer(tmp_path / "w.db")
        try:
            await writer.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
            before = writer.commits
            outcomes = await asyncio.gather(
                writer.submit(_insert(1)),
                writer.submit(_insert(2, fail=True)),
                writer.submit(_insert(3)),
                return_exceptions=True,
            )
            assert outcomes[0] == 1 and outcomes[2] == 3
            assert isinstance(outcomes[1], ValueError)
            assert writer.commits == before + 1  # one shared batch, still one commit
            rows = await writer.submit(lambda c: c.execute("SELECT v FROM t").fetchall())
            assert sorted(r[0] for r in rows) == [1, 3]
        finally:
            writer.stop()
