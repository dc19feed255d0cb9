"""Transactions on the PostgreSQL store: an action's (`ctx.transaction()`) and one outside a
run, each on a connection of its own. `write_append` is the append both group commit and a
committing transaction run, under the fence check."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import psycopg

from ..action import JSON
from ..events import Event
from . import postgres_leases as leases
from .base import Claim, ClaimLost, StoreError, StoreTransaction
from .postgres_writer import Conn, drop, row
from .sql import Appending, Statements, translate

SQL = Statements("postgresql")


async def write_append(conn: Conn, appending: Appending) -> int:
    """Move the run row on and insert the records, if the claim is current; returns the
    run's `last_seq` afterwards."""
    moved = await row(conn, appending.sql(SQL), appending.params)
    if moved is None:
        raise ClaimLost(appending.claim.run_id)
    last_seq = int(moved["last_seq"])
    if appending.releases and moved["concurrency_key"] is not None:
        await leases.notify(conn, "")  # the key may be free: the next run's turn
    async with conn.cursor() as cursor:
        if appending.log_rows:
            await cursor.executemany(SQL.insert_log, appending.numbered_rows(last_seq))
        if appending.progress_rows:
            await cursor.executemany(SQL.save_progress, appending.progress_rows)
    return last_seq


class PostgresTransaction(StoreTransaction):
    """Writes on a connection of their own, committed with the records of the claim's run
    under the fence check (none outside a run), or rolled back."""

    dialect = "postgresql"

    def __init__(
        self,
        conn: Conn,
        claim: Claim | None,
        *,
        reconnect: Callable[[], Awaitable[Conn]],
        give_back: Callable[[Conn], None],
        committed: Callable[[Claim, Sequence[Event]], None],
    ) -> None:
        self._conn: Conn | None = conn
        self._claim = claim
        self._reconnect = reconnect
        self._give_back = give_back
        self._committed = committed
        self._lock = anyio.Lock()
        self._fresh = True

    async def _cursor(self, sql: str, params: Sequence[JSON]) -> psycopg.AsyncCursor[Any]:
        if self._conn is None:
            raise StoreError("the transaction is already finished")
        query = translate(sql).encode()
        try:
            return await self._conn.execute(query, tuple(params))
        except psycopg.OperationalError:
            if not self._fresh:
                raise
            # An idle connection that died with a server restart: nothing was done on it
            # yet, so the statement runs again on a new one.
            drop(self._conn)
            self._conn = await self._reconnect()
            return await self._conn.execute(query, tuple(params))
        finally:
            self._fresh = False

    async def execute(self, sql: str, params: Sequence[JSON] = ()) -> int:
        async with self._lock:
            return (await self._cursor(sql, params)).rowcount

    async def fetchone(self, sql: str, params: Sequence[JSON] = ()) -> tuple[JSON, ...] | None:
        async with self._lock:
            found = await (await self._cursor(sql, params)).fetchone()
        return None if found is None else tuple(found)

    async def fetchall(self, sql: str, params: Sequence[JSON] = ()) -> list[tuple[JSON, ...]]:
        async with self._lock:
            found = await (await self._cursor(sql, params)).fetchall()
        return [tuple(r) for r in found]

    async def commit(
        self, records: Sequence[Event], *, progress: Mapping[str, JSON] | None = None
    ) -> list[Event]:
        claim = self._claim
        if claim is None and (records or progress):
            raise ValueError("records need the claim of their run")
        appending = None if claim is None else Appending(claim, records, progress, time.time())
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError("the transaction is already finished")
            try:
                with anyio.CancelScope(shield=True):
                    numbered = (
                        []
                        if appending is None
                        else appending.numbered(await write_append(conn, appending))
                    )
                    await conn.commit()
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
                raise
            finally:
                self._finish()
        if claim is not None:
            self._committed(claim, numbered)
        return numbered

    async def rollback(self) -> None:
        async with self._lock:
            if self._conn is not None:
                try:
                    with contextlib.suppress(psycopg.Error):
                        await self._conn.rollback()
                finally:
                    self._finish()

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._give_back(conn)
