"""Transactions on the SQLite store: an action's (`ctx.transaction()`) and one outside a run.

Each holds its own connection in `BEGIN IMMEDIATE` until it commits or rolls back; calls
run in worker threads, never on the event loop. `write_append` is the append both the
group-commit writer and a committing transaction run.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import anyio.to_thread

from ..action import JSON
from ..events import Event
from .base import Claim, ClaimLost, StoreError, StoreTransaction
from .sql import Appending, statements

T = TypeVar("T")

SQL = statements("sqlite")


def write_append(conn: sqlite3.Connection, appending: Appending) -> int:
    """Move the run row on and insert the records, if the claim is current; returns the
    run's `last_seq` afterwards."""
    run_id = appending.claim.run_id
    if not conn.execute(appending.sql(SQL), appending.params).rowcount:
        raise ClaimLost(run_id)
    last_seq: int = conn.execute(SQL.last_seq, (run_id,)).fetchone()[0]
    conn.executemany(SQL.insert_log, appending.numbered_rows(last_seq))
    if appending.progress_rows:
        conn.executemany(SQL.save_progress, appending.progress_rows)
    return last_seq


class SqliteTransaction(StoreTransaction):
    """Writes on a connection of their own, committed with the records of the claim's run
    (none outside a run), or rolled back."""

    dialect = "sqlite"

    def __init__(
        self,
        conn: sqlite3.Connection,
        claim: Claim | None,
        give_back: Callable[[sqlite3.Connection], None],
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._claim = claim
        self._give_back = give_back
        self._lock = threading.Lock()

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> Callable[[], T]:
        def run() -> T:
            with self._lock:
                if self._conn is None:
                    raise StoreError("the transaction is already finished")
                return fn(self._conn)

        return run

    async def execute(self, sql: str, params: Sequence[JSON] = ()) -> int:
        return await anyio.to_thread.run_sync(
            self._call(lambda c: c.execute(sql, tuple(params)).rowcount)
        )

    async def fetchone(self, sql: str, params: Sequence[JSON] = ()) -> tuple[JSON, ...] | None:
        row = await anyio.to_thread.run_sync(
            self._call(lambda c: c.execute(sql, tuple(params)).fetchone())
        )
        return None if row is None else tuple(row)

    async def fetchall(self, sql: str, params: Sequence[JSON] = ()) -> list[tuple[JSON, ...]]:
        rows = await anyio.to_thread.run_sync(
            self._call(lambda c: c.execute(sql, tuple(params)).fetchall())
        )
        return [tuple(row) for row in rows]

    async def commit(
        self, records: Sequence[Event], *, progress: Mapping[str, JSON] | None = None
    ) -> list[Event]:
        claim = self._claim
        if claim is None and (records or progress):
            raise ValueError("records need the claim of their run")
        appending = None if claim is None else Appending(claim, records, progress, time.time())

        def commit(conn: sqlite3.Connection) -> list[Event]:
            try:
                numbered = (
                    [] if appending is None else appending.numbered(write_append(conn, appending))
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return numbered

        try:
            return await anyio.to_thread.run_sync(self._call(commit))
        finally:
            self._finish()

    async def rollback(self) -> None:
        def rollback(conn: sqlite3.Connection) -> None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

        if self._conn is not None:
            try:
                await anyio.to_thread.run_sync(self._call(rollback))
            finally:
                self._finish()

    def _finish(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            self._give_back(conn)
