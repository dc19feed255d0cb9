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
from .sql import Appending, numbered, statements
from .writer import WriteConnection

T = TypeVar("T")

SQL = statements("sqlite")


KNOWN_SEQS_MAX = 10_000
"""Runs whose `last_seq` a store remembers at most (forgotten all at once beyond)."""


class KnownSeqs:
    """Each claimed run's `last_seq` as this process last wrote it: an append then moves
    the run row on with an update that checks it (`last_seq = :seq`), without reading it
    first. Only a hint: a wrong or missing value (a rolled-back commit, a run another
    process wrote) costs the read and nothing else."""

    __slots__ = ("_seqs",)

    def __init__(self) -> None:
        self._seqs: dict[str, int] = {}

    def get(self, run_id: str) -> int | None:
        return self._seqs.get(run_id)

    def note(self, run_id: str, last_seq: int) -> None:
        if len(self._seqs) >= KNOWN_SEQS_MAX:
            self._seqs.clear()
        self._seqs[run_id] = last_seq

    def forget(self, run_id: str) -> None:
        self._seqs.pop(run_id, None)


def write_append(conn: WriteConnection, appending: Appending, known: KnownSeqs) -> int:
    """Move the run row on and insert the records, if the claim is current; returns the
    run's `last_seq` afterwards."""
    run_id = appending.claim.run_id
    before = known.get(run_id)
    if before is None or not _moved_on(conn, appending, before):
        row = conn.execute(SQL.last_seq, (run_id,)).fetchone()
        if row is None or not _moved_on(conn, appending, row[0]):
            known.forget(run_id)
            raise ClaimLost(run_id)
        before = row[0]
    last_seq: int = before + len(appending.log_rows)
    conn.run_many(SQL.insert_log, appending.numbered_rows(last_seq))
    if appending.progress_rows:
        conn.run_many(SQL.save_progress, appending.progress_rows)
    if appending.releases:
        known.forget(run_id)
    else:
        known.note(run_id, last_seq)
    return last_seq


def _moved_on(conn: WriteConnection, appending: Appending, last_seq: int) -> bool:
    """The run row moved on from `last_seq`: the claim is current and `last_seq` right."""
    appending.params["seq"] = last_seq
    sql, values = numbered(appending.sql(SQL))
    return bool(conn.run(sql, values(appending.params)).rowcount)


class SqliteTransaction(StoreTransaction):
    """Writes on a connection of their own, committed with the records of the claim's run
    (none outside a run), or rolled back."""

    dialect = "sqlite"

    def __init__(
        self,
        conn: WriteConnection,
        claim: Claim | None,
        give_back: Callable[[WriteConnection], None],
        known: KnownSeqs,
    ) -> None:
        self._conn: WriteConnection | None = conn
        self._claim = claim
        self._give_back = give_back
        self._known = known
        self._lock = threading.Lock()

    def _call(self, fn: Callable[[WriteConnection], T]) -> Callable[[], T]:
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

        def commit(conn: WriteConnection) -> list[Event]:
            try:
                numbered = (
                    []
                    if appending is None
                    else appending.numbered(write_append(conn, appending, self._known))
                )
                conn.run("COMMIT")
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
