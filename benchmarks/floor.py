"""Baseline (b), the durability floor: a bare loop doing one fsync'd SQLite commit per action."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class CommitFloor:
    """An SQLite file in WAL mode with `synchronous=FULL`: every commit reaches the disk.

    This is what the cheapest durable log costs when each action's record is its own
    transaction: one `BEGIN IMMEDIATE; INSERT; COMMIT` (one fsync of the WAL) per action.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS log ("
            " seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, action TEXT NOT NULL,"
            " payload TEXT NOT NULL)"
        )
        self._runs = 0

    def commit_each(self, actions: int) -> None:
        """One saga's worth of records: `actions` inserts, each committed on its own."""
        self._runs += 1
        run_id = f"run-{self._runs}"
        for i in range(actions):
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "INSERT INTO log (run_id, action, payload) VALUES (?, ?, ?)",
                (run_id, f"a{i}", '{"done": true}'),
            )
            self._conn.execute("COMMIT")

    def rows(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM log").fetchone()[0])

    def settings(self) -> tuple[str, int]:
        """(journal mode, synchronous level): 'wal' and 2 (FULL) when set up as meant."""
        mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = self._conn.execute("PRAGMA synchronous").fetchone()[0]
        return str(mode), int(sync)

    def close(self) -> None:
        self._conn.close()
