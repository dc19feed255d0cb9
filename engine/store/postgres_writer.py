"""Group commit on PostgreSQL, and the connections of the PostgreSQL store.

Concurrent writes share commits: the first writer to find no commit in flight leads, runs
every queued write in one transaction, commits once, and wakes the others. A write that may
fail in SQL runs in a SAVEPOINT of its own, so its error is its writer's alone; a write made
of one statement that fails only by matching nothing (an append) is submitted `isolated=False`
and spares the two round trips: should one fail in SQL after all, the batch runs again with
every write isolated.
A batch made only of writes that check themselves in SQL (appends under their fence, claims,
lease renewals: `submit_pipelined`) is sent in pipeline mode, BEGIN to COMMIT, in one round
trip while the connection is in use (`HOT`).
A connection lost before COMMIT was sent rolled everything back on the server, so the batch
runs again on a new connection; lost during COMMIT (or during a pipelined batch, which sends
COMMIT with the writes), the outcome is unknown, so the writers get `StoreError` (their runs
recover from the log).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from .base import StoreError

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
Params = tuple[Any, ...] | list[Any] | dict[str, Any]


async def connect(url: str, *, autocommit: bool = False, retry_for: float = 0.0) -> Conn:
    """A new connection; while the server is away (restarting), retried with backoff for up
    to `retry_for` seconds before giving up with `StoreError`."""
    deadline = time.monotonic() + retry_for
    delay = 0.05
    while True:
        try:
            return await psycopg.AsyncConnection.connect(
                url, autocommit=autocommit, connect_timeout=10
            )
        except psycopg.OperationalError as exc:
            if time.monotonic() + delay > deadline:
                raise StoreError(f"cannot connect to {redact(url)}: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {redact(url)}: {exc}") from exc
        await anyio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def rows(conn: Conn, sql: str, params: Params = ()) -> list[DictRow]:
    """The rows of one statement, read by column name."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(sql, params)
        return await cursor.fetchall()


async def row(conn: Conn, sql: str, params: Params = ()) -> DictRow | None:
    """The first row of one statement (None: no row), read by column name."""
    found = await rows(conn, sql, params)
    return found[0] if found else None


async def pipelined_reads(conn: Conn, reads: Sequence[tuple[str, Params]]) -> list[list[DictRow]]:
    """Several reads on an autocommit connection, sent at once in one read-only
    transaction: one round trip, one snapshot."""
    cursors = [conn.cursor(row_factory=dict_row) for _ in reads]
    try:
        async with conn.pipeline():
            await conn.execute(b"BEGIN READ ONLY")
            for cursor, (sql, params) in zip(cursors, reads, strict=True):
                await cursor.execute(sql, params)
            await conn.execute(b"COMMIT")
        return [await cursor.fetchall() for cursor in cursors]
    except psycopg.Error:
        if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
            await conn.execute(b"ROLLBACK")  # a failed read skipped the COMMIT
        raise
    finally:
        for cursor in cursors:
            await cursor.close()


def redact(url: str) -> str:
    """The URL without its password, for error messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def drop(conn: Conn) -> None:
    """Drop a connection without waiting (its socket closes; the server rolls back)."""
    with contextlib.suppress(Exception):
        conn.pgconn.finish()


Send = Callable[[Conn], Awaitable[Callable[[], Awaitable[T]]]]
"""Sends a write's statements in pipeline mode; returns what reads their results."""

HOT = 1.0
"""Seconds after a commit during which the connection is taken to be alive: a batch is then
sent whole (BEGIN, writes, COMMIT) in one round trip. After longer idleness the server may
have gone away (restarted) unnoticed, so BEGIN goes alone first: a connection found lost
then lost nothing, and the batch runs again on a new one."""


@dataclass(slots=True)
class _Request:
    fn: Callable[[Conn], Awaitable[Any]]
    isolated: bool
    send: Send[Any] | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    """The PostgreSQL store's writes, batched into shared commits on one connection."""

    def __init__(self, reconnect: Callable[[], Awaitable[Conn]]) -> None:
        self._reconnect = reconnect
        self.connection: Conn | None = None
        self.open = False
        self._pending: list[_Request] = []
        self._leading = False
        self._alive_at = -HOT
        self.commits = 0
        """Write transactions committed (for tests and benchmarks)."""

    async def submit(self, fn: Callable[[Conn], Awaitable[T]], *, isolated: bool = True) -> T:
        """Run `fn(conn)` in the next group commit; returns once that commit is durable.
        `isolated=False` only for a `fn` of one statement (see the module's doc)."""
        result: T = await self._submit(_Request(fn, isolated))
        return result

    async def submit_pipelined(self, send: Send[T]) -> T:
        """Like `submit(isolated=False)`, for a write whose statements fail in SQL only
        exceptionally (a stale claim matches nothing instead): `send(conn)` sends them
        without waiting and returns what reads their results once the batch is committed.
        A batch of such writes only goes to the server in one round trip, each write's
        checks (its fence) inside the batch's transaction."""

        async def fn(conn: Conn) -> T:
            return await (await send(conn))()

        result: T = await self._submit(_Request(fn, False, send))
        return result

    async def _submit(self, request: _Request) -> Any:
        if not self.open:
            raise StoreError("the store is closed")
        self._pending.append(request)
        if not self._leading:
            self._leading = True
            try:
                with anyio.CancelScope(shield=True):
                    while self._pending:
                        batch, self._pending = self._pending, []
                        await self._commit(batch)
                        for done in batch:
                            done.done.set()
            finally:
                self._leading = False
        await request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    async def _commit(self, batch: list[_Request]) -> None:
        reconnected = isolate_all = False
        while True:
            committing = False
            try:
                conn = await self._writable()
                hot = time.monotonic() - self._alive_at < HOT
                if hot and not isolate_all and all(r.send is not None for r in batch):
                    committing = True  # COMMIT goes with the writes
                    await _pipelined(conn, batch)
                else:
                    async with conn.transaction():
                        for request in batch:
                            await _run(conn, request, isolated=request.isolated or isolate_all)
                        committing = True
                self.commits += 1
                self._alive_at = time.monotonic()
                return
            except _SqlFailed:
                isolate_all = True  # rolled back: again, each write in its savepoint
            except (psycopg.Error, StoreError) as exc:
                lost = isinstance(exc, psycopg.OperationalError)
                if lost and not committing and not reconnected:
                    reconnected = True
                    continue
                for request in batch:
                    request.result = None
                    request.error = StoreError(f"commit failed: {exc}")
                return

    async def _writable(self) -> Conn:
        conn = self.connection
        if conn is None or conn.closed or conn.broken:
            conn = self.connection = await self._reconnect()  # the server restarted
        if not conn.autocommit:  # transactions are begun and ended here, explicitly
            await conn.set_autocommit(True)
        return conn


class _SqlFailed(Exception):
    """A write outside a savepoint failed in SQL: the transaction is aborted."""


async def _pipelined(conn: Conn, batch: list[_Request]) -> None:
    """BEGIN, every write of `batch` and COMMIT sent at once: one round trip. A write failing
    in SQL aborts the transaction (COMMIT then rolls back): `_SqlFailed`."""
    reads: list[Callable[[], Awaitable[Any]]] = []
    try:
        async with conn.pipeline():
            await conn.execute(b"BEGIN")
            for request in batch:
                assert request.send is not None
                reads.append(await request.send(conn))
            await conn.execute(b"COMMIT")
    except psycopg.Error as exc:
        if conn.closed or conn.broken:
            raise  # lost with its COMMIT sent: the outcome is unknown
        if conn.info.transaction_status != TransactionStatus.IDLE:
            await conn.execute(b"ROLLBACK")
        raise _SqlFailed from exc
    for request, read in zip(batch, reads, strict=True):
        request.result, request.error = None, None
        try:
            request.result = await read()
        except Exception as exc:  # e.g. ClaimLost: the write matched nothing
            request.error = exc


async def _run(conn: Conn, request: _Request, *, isolated: bool) -> None:
    request.result, request.error = None, None
    try:
        if isolated:
            async with conn.transaction():  # a SAVEPOINT
                request.result = await request.fn(conn)
        else:
            request.result = await request.fn(conn)
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        if not isolated:
            raise _SqlFailed from exc
        request.error = exc
    except Exception as exc:  # e.g. ClaimLost: raised after a statement that changed nothing
        request.error = exc
