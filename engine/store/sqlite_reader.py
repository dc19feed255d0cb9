"""A SQLite store read without an event loop, a writer thread or the owner lock: for the
commands that only read runs (`status`, `list`, `logs`), which make a few SELECTs.

Its reads are `SqlReads`, the SQL store's own; `_query` runs on the caller's thread and
never waits, so `finish_now` runs them to their end with no event loop at all. The reader
is only a short cut: where the full store would have to write first (no database yet, a
migration of the engine's tables to apply) `open_reader` gives None and the caller opens
the store. A plugin's migrations wait for the next command that opens it: the reads of
runs read only the engine's tables (and so need no plugin loaded).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ..errors import RunNotFound
from .migrations import core_pending
from .reads import Params, SqlReads
from .sql import Row, statements
from .sqlite_file import check_database_file, database_path, is_unusable, run_not_found, unusable

T = TypeVar("T")


class SqliteReader(SqlReads):
    """Read-only reads of one SQLite store file (`mode=ro`: it cannot write)."""

    sql = statements("sqlite")
    no_limit: ClassVar[int | None] = -1

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    async def _query(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            rows: list[Row] = self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            if is_unusable(exc):
                raise unusable(self.path, exc) from None
            raise
        return rows

    def _not_found(self, run_id: str) -> RunNotFound:
        return run_not_found(self.path, run_id)

    def close(self) -> None:
        self._conn.close()


def open_reader(url: str, busy_timeout: float = 60.0) -> SqliteReader | None:
    """A reader of the SQLite store at `url`, or None where only the store will do: not a
    SQLite URL, no database file yet, or the engine's migrations not all applied (opening
    the store applies them). A file the store would refuse is refused the same way here."""
    if "://" in url and not url.startswith("sqlite://"):
        return None
    path = database_path(url)
    if not path.is_file():
        return None
    check_database_file(path)
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=busy_timeout)
    except sqlite3.Error:
        return None  # the store opens it, or says why it cannot
    conn.row_factory = sqlite3.Row
    reader = SqliteReader(path, conn)
    try:
        applied = conn.execute(reader.sql.migrations_applied).fetchall()
    except sqlite3.Error:
        applied = None  # an empty database: the store creates the tables
    if applied is None or core_pending({row["namespace"]: row["version"] for row in applied}):
        reader.close()
        return None
    return reader


def finish_now(call: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits (a `SqliteReader`'s reads), run on this
    thread without an event loop. RuntimeError if it does wait: it needs a loop."""
    try:
        call.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    call.close()
    raise RuntimeError("a read waited: it needs the store, under an event loop")
