"""Transactions on the PostgreSQL store: an action's (`ctx.transaction()`) and one outside a
run, each on a connection of its own. `write_append` is the append both group commit and a
committing transaction run, under the fence check."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cache
from typing import Any

import anyio
import psycopg

from ..action import JSON
from ..events import Event
from . import postgres_leases as leases
from .base import Claim, ClaimLost, StoreError, StoreTransaction
from .postgres_writer import Conn, drop, row
from .sql import Appending, statements, translate

SQL = statements("postgresql")


async def write_append(conn: Conn, appending: Appending) -> int:
    """Move the run row on and insert the records and progress, if the claim is current;
    returns the run's `last_seq` afterwards. One statement, so one round trip: the records
    are numbered by the server from the `last_seq` the update returns, and nothing is
    written when the claim is stale (ClaimLost, with no SQL error)."""
    moved = await row(conn, _one_statement(appending.sql(SQL)), _one_statement_params(appending))
    if moved is None:
        raise ClaimLost(appending.claim.run_id)
    if appending.releases and moved.get("concurrency_key") is not None:
        await leases.notify(conn, "")  # the key may be free: the next run's turn
    return int(moved["last_seq"])


@cache
def _one_statement(update: str) -> str:
    """The append's update (`... RETURNING last_seq`) with the inserts riding on it."""
    return (
        f"WITH moved AS ({update}),"
        " logged AS (INSERT INTO run_log (run_id, seq, at, kind, action, data)"
        " SELECT %(run)s, moved.last_seq - %(n)s + r.ord, r.at, r.kind, r.action, r.data"
        " FROM moved, unnest(%(ats)s::float8[], %(kinds)s::text[], %(actions)s::text[],"
        " %(datas)s::text[]) WITH ORDINALITY AS r(at, kind, action, data, ord)),"
        " progressed AS (INSERT INTO action_progress (run_id, action, at, data)"
        " SELECT %(run)s, p.action, %(now)s, p.data"
        " FROM moved, unnest(%(p_actions)s::text[], %(p_datas)s::text[]) AS p(action, data)"
        " ON CONFLICT (run_id, action) DO UPDATE SET at = excluded.at, data = excluded.data)"
        " SELECT * FROM moved"
    )


def _one_statement_params(appending: Appending) -> dict[str, Any]:
    logs, progress = appending.log_rows, appending.progress_rows
    return {
        **appending.params,
        "ats": [r[1] for r in logs],
        "kinds": [r[2] for r in logs],
        "actions": [r[3] for r in logs],
        "datas": [r[4] for r in logs],
        "p_actions": [r[1] for r in progress],
        "p_datas": [r[3] for r in progress],
    }


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
