"""Transactions on the PostgreSQL store: an action's (`ctx.transaction()`) and one outside a
run, each on a connection of its own. `write_append` is the append both group commit and a
committing transaction run, under the fence check."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cache
from typing import Any

import anyio
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from ..action import JSON
from ..events import Event
from . import postgres_leases as leases
from .base import Claim, ClaimLost, StoreError, StoreTransaction
from .postgres_writer import Conn, drop
from .sql import Appending, statements, translate

SQL = statements("postgresql")


async def write_append(conn: Conn, appending: Appending, lease: float) -> int:
    """Move the run row on and insert the records and progress, if the claim is current;
    returns the run's `last_seq` afterwards (`send_append`, waited for)."""
    return await (await send_append(conn, appending, lease))()


async def send_append(
    conn: Conn, appending: Appending, lease: float, *, fenced: bool = False
) -> Callable[[], Awaitable[int]]:
    """Send the append; returns what reads the run's `last_seq` after it. One statement,
    prepared: the records are numbered by the server from the `last_seq` the update
    returns, and nothing is written when the claim is stale (ClaimLost, with no SQL
    error), so it can share a pipelined batch with other runs' appends. `fenced`: a stale
    claim fails the statement instead (`CLAIM_LOST`), aborting the transaction, so a COMMIT
    sent after it without waiting rolls back the transaction's other writes too.

    A write under the claim proves its owner alive, so an append that keeps the run renews
    its lease for `lease` seconds: a lease is never lost while its run makes progress, however
    late the heartbeat (stuck behind a busy event loop)."""
    cursor = conn.cursor(row_factory=dict_row)
    renews = not appending.releases
    update = SQL.append("state" in appending.params, appending.releases, renews=renews)
    params = _one_statement_params(appending)
    if renews:
        params["lease"] = lease
    await cursor.execute(_one_statement(update, appending.releases, fenced), params, prepare=True)

    async def last_seq() -> int:
        moved = await cursor.fetchone()
        await cursor.close()
        if moved is None:
            raise ClaimLost(appending.claim.run_id)
        return int(moved["last_seq"])

    return last_seq


CLAIM_LOST = psycopg.errors.DivisionByZero
"""The error of a `fenced` append whose claim is stale (its only division is by the number
of run rows it moved)."""


@cache
def _one_statement(update: str, releases: bool, fenced: bool) -> str:
    """The append's update (`... RETURNING last_seq`) with the inserts riding on it and,
    when it releases a run with a concurrency key, the NOTIFY that the next run's turn
    may have come."""
    # A CTE that is only SELECTed runs when read: the final SELECT reads `notified`.
    notify = (
        f", notified AS (SELECT pg_notify({leases.CHANNEL_SQL}, '') FROM moved"
        " WHERE moved.concurrency_key IS NOT NULL)"
        if releases
        else ""
    )
    columns = "moved.*" + (", (SELECT count(*) FROM notified) AS notified" if releases else "")
    source = "moved"
    if fenced:  # selected, or the planner drops the division
        columns += ", fence.held"
        source = "(SELECT 1 / count(*) AS held FROM moved) AS fence LEFT JOIN moved ON TRUE"
    return (
        f"WITH moved AS ({update}),"
        " logged AS (INSERT INTO run_log (run_id, seq, at, kind, action, data)"
        " SELECT %(run)s, moved.last_seq - %(n)s + r.ord, (r.item->>0)::float8, r.item->>1,"
        " r.item->>2, r.item->>3 FROM moved,"
        " json_array_elements(%(records)s::json) WITH ORDINALITY AS r(item, ord)),"
        " progressed AS (INSERT INTO action_progress (run_id, action, at, data)"
        " SELECT %(run)s, p.item->>0, %(now)s, p.item->>1"
        " FROM moved, json_array_elements(%(progress)s::json) AS p(item)"
        " ON CONFLICT (run_id, action) DO UPDATE SET at = excluded.at, data = excluded.data)"
        f"{notify} SELECT {columns} FROM {source}"
    )


def _one_statement_params(appending: Appending) -> dict[str, Any]:
    # The rows as one JSON text each: one json.dumps in C, where adapting four Python lists
    # to arrays cost more than the rest of an append in profiles.
    logs, progress = appending.log_rows, appending.progress_rows
    return {
        **appending.params,
        "records": json.dumps([r[1:] for r in logs]),
        "progress": json.dumps([(r[1], r[3]) for r in progress]),
    }


class PostgresTransaction(StoreTransaction):
    """Writes on a connection of their own, committed with the records of the claim's run
    under the fence check (none outside a run), or rolled back.

    The connection is in autocommit mode and the transaction explicit, so BEGIN rides with
    the first statement and COMMIT with the append, in pipeline mode: an action's
    transaction costs two round trips, not four, and holds its connection half as long."""

    dialect = "postgresql"

    def __init__(
        self,
        conn: Conn,
        claim: Claim | None,
        *,
        reconnect: Callable[[], Awaitable[Conn]],
        give_back: Callable[[Conn], None],
        committed: Callable[[Claim, Sequence[Event]], None],
        lease: float,
    ) -> None:
        self._conn: Conn | None = conn
        self._lease = lease
        self._claim = claim
        self._reconnect = reconnect
        self._give_back = give_back
        self._committed = committed
        self._lock = anyio.Lock()
        self._begun = False

    async def _cursor(self, sql: str, params: Sequence[JSON]) -> psycopg.AsyncCursor[Any]:
        if self._conn is None:
            raise StoreError("the transaction is already finished")
        query = translate(sql).encode()
        if self._begun:
            return await self._conn.execute(query, tuple(params))
        try:
            return await self._first(self._conn, query, params)
        except psycopg.OperationalError:
            if not self._conn.broken:
                raise
            # An idle connection that died with a server restart: nothing was done on it
            # yet, so the statement runs again on a new one.
            drop(self._conn)
            self._conn = await self._reconnect()
            return await self._first(self._conn, query, params)

    async def _first(
        self, conn: Conn, query: bytes, params: Sequence[JSON]
    ) -> psycopg.AsyncCursor[Any]:
        """BEGIN and the first statement, sent together."""
        async with conn.pipeline():
            await conn.execute(b"BEGIN")
            self._begun = True
            cursor = await conn.execute(query, tuple(params))
        return cursor

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
                    numbered = await self._commit(conn, appending)
            except BaseException:
                if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute(b"ROLLBACK")
                raise
            finally:
                self._finish()
        if claim is not None:
            self._committed(claim, numbered)
        return numbered

    async def _commit(self, conn: Conn, appending: Appending | None) -> list[Event]:
        """The append under the fence check and COMMIT (BEGIN too if nothing ran), sent
        together; a stale claim rolls the whole transaction back (ClaimLost)."""
        if appending is None and not self._begun:
            return []
        last_seq = None
        try:
            async with conn.pipeline():
                if not self._begun:
                    await conn.execute(b"BEGIN")
                if appending is not None:
                    last_seq = await send_append(conn, appending, self._lease, fenced=True)
                await conn.execute(b"COMMIT")
        except CLAIM_LOST:
            assert appending is not None
            raise ClaimLost(appending.claim.run_id) from None  # rolled back (`commit`)
        if appending is None or last_seq is None:
            return []
        return appending.numbered(await last_seq())

    async def rollback(self) -> None:
        async with self._lock:
            if self._conn is not None:
                try:
                    if self._begun and not self._conn.broken:
                        with contextlib.suppress(psycopg.Error):
                            await self._conn.execute(b"ROLLBACK")
                finally:
                    self._finish()

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._give_back(conn)
