"""The PostgreSQL store: many workers on many machines, claims as leases with fencing.

A claim is a lease: the run row records its owner, a fence that rises on every claim, and
`lease_expires` computed with the database clock (`now()`), never a worker's. The owner
renews its leases with `heartbeat`; a run whose lease ran out is claimed by anyone, with a
higher fence. Every write of a run is an UPDATE conditional on (owner, fence) in the same
transaction, so a worker that lost its lease (paused, partitioned) can write nothing more.

Writes share commits (group commit): the first writer to find no commit in flight leads,
runs every queued write in a SAVEPOINT of one transaction, commits once, and wakes the
others. New and handed-back runs are announced with NOTIFY on `sagactl_runs`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import anyio
import psycopg

from ..action import JSON
from ..errors import RunNotFound
from ..events import Event
from ..states import FINISHED, UNFINISHED, RunState, run_state_of
from .base import (
    RELEASING,
    STATS_NAMES,
    STATS_SQL,
    Claim,
    ClaimLost,
    Created,
    NewRun,
    RunBusy,
    RunExists,
    RunRecord,
    Store,
    StoreError,
    StoreTransaction,
    record_from_row,
    this_node,
)
from .migrations import registered
from .pages import CENSUS_SQL, RunSummary, page_sql, summaries

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]

CHANNEL = "sagactl_runs"
LEASE_ENV = "SAGACTL_LEASE"
# pg_advisory_lock key of schema migrations: every worker starting on an empty database
# waits for the first to finish instead of racing it into duplicate CREATE TABLEs.
MIGRATION_LOCK = 0x5A6A_C711

_RUN_COLUMNS = (
    "run_id, saga, state, definition_hash, definition, inputs, plugin_versions, created,"
    " updated, started, finished, error, error_code, owner, cancel_requested, node,"
    " extract(epoch FROM lease_expires)::float8"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


_QMARK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|%|\?")


def translate(sql: str) -> str:
    """DB-API `?` placeholders -> psycopg's `%s` (and a literal `%` -> `%%`), leaving
    quoted strings, identifiers and comments alone."""

    def sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token

    return _QMARK.sub(sub, sql)


@dataclass(slots=True)
class _Request:
    fn: Callable[[Conn], Awaitable[Any]]
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None


class PostgresStore(Store):
    """A `Store` in one PostgreSQL database (`postgresql://...`)."""

    dialect: ClassVar[str] = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        lease: float | None = None,
        node: str | None = None,
        reconnect: float = 30.0,
    ) -> None:
        self.url = url
        self.reconnect = reconnect
        """Seconds to keep trying to reconnect to a server that went away."""
        self.lease = lease if lease is not None else float(os.environ.get(LEASE_ENV, "30"))
        self.heartbeat_interval = self.lease / 3
        self.node = node or this_node()
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
        self._held: dict[str, Claim] = {}
        self._writer: Conn | None = None
        self._reader: Conn | None = None
        self._listener: Conn | None = None
        self._read_lock = anyio.Lock()
        self._pending: list[_Request] = []
        self._leading = False
        self._idle: list[Conn] = []
        self._open = False
        self.commits = 0
        """Write transactions committed by group commit (for tests and benchmarks)."""

    # -- lifecycle ---------------------------------------------------------------------

    async def _connect(self, *, autocommit: bool = False, retry: bool = True) -> Conn:
        """A new connection; while the server is away (restarting), retried with backoff
        for up to `reconnect` seconds before giving up with `StoreError`."""
        deadline = time.monotonic() + (self.reconnect if retry else 0)
        delay = 0.05
        while True:
            try:
                return await psycopg.AsyncConnection.connect(
                    self.url, autocommit=autocommit, connect_timeout=10
                )
            except psycopg.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise StoreError(f"cannot connect to {_redact(self.url)}: {exc}") from exc
            except psycopg.Error as exc:
                raise StoreError(f"cannot connect to {_redact(self.url)}: {exc}") from exc
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def open(self) -> None:
        self._writer = await self._connect(retry=False)
        self._reader = await self._connect(autocommit=True, retry=False)
        self._open = True
        await self.upgrade()

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        # Hand back every lease still held: other workers take those runs over at once.
        if self._held and self._writer is not None and not self._writer.closed:
            with contextlib.suppress(psycopg.Error):
                async with self._writer.transaction():
                    await self._writer.execute(
                        "UPDATE runs SET lease_expires = now() WHERE owner = %s", (self.token,)
                    )
                    await self._writer.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        self._held.clear()
        for conn in [self._writer, self._reader, self._listener, *self._idle]:
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
        self._writer = self._reader = self._listener = None
        self._idle.clear()

    # -- plumbing ----------------------------------------------------------------------

    async def _write(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `fn(conn)` in the next group commit; returns once that commit is durable."""
        if not self._open:
            raise StoreError("the store is closed")
        request = _Request(fn)
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
        result: T = request.result
        return result

    async def _commit(self, batch: list[_Request]) -> None:
        # A connection lost before COMMIT was sent rolled everything back on the server:
        # the batch is run again on a new connection. Lost during COMMIT, the outcome is
        # unknown, so the writers get StoreError (their runs recover from the log).
        for attempt in range(2):
            committing = False
            try:
                conn = await self._writable()
                async with conn.transaction():
                    for request in batch:
                        request.result, request.error = None, None
                        try:
                            async with conn.transaction():  # a SAVEPOINT per request
                                request.result = await request.fn(conn)
                        except psycopg.OperationalError:
                            raise
                        except Exception as exc:
                            request.error = exc
                    committing = True
                self.commits += 1
                return
            except (psycopg.Error, StoreError) as exc:
                if attempt == 0 and not committing and isinstance(exc, psycopg.OperationalError):
                    continue
                for request in batch:
                    request.result = None
                    request.error = StoreError(f"commit failed: {exc}")
                return

    async def _writable(self) -> Conn:
        if self._writer is None or self._writer.closed or self._writer.broken:
            self._writer = await self._connect()  # the server restarted: reconnect
        return self._writer

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        if not self._open:
            raise StoreError("the store is closed")
        async with self._read_lock:
            for attempt in (1, 2):
                if self._reader is None or self._reader.closed or self._reader.broken:
                    self._reader = await self._connect(autocommit=True)
                try:
                    return await fn(self._reader)
                except psycopg.OperationalError as exc:
                    if attempt == 2:
                        raise StoreError(f"read failed: {exc}") from exc
        raise AssertionError("unreachable")

    # -- migrations --------------------------------------------------------------------

    async def upgrade(self) -> list[tuple[str, int]]:
        conn = await self._connect(autocommit=True)
        try:
            await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            try:
                return await self._upgrade(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        finally:
            await conn.close()

    async def _upgrade(self, conn: Conn) -> list[tuple[str, int]]:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (namespace TEXT NOT NULL,"
            " version INTEGER NOT NULL, applied DOUBLE PRECISION NOT NULL,"
            " PRIMARY KEY (namespace, version))"
        )
        cursor = await conn.execute(
            "SELECT namespace, max(version) FROM schema_migrations GROUP BY 1"
        )
        current = {str(ns): int(v) for ns, v in await cursor.fetchall()}
        applied: list[tuple[str, int]] = []
        for namespace, steps in registered().items():
            for step in steps:
                if step.version <= current.get(namespace, 0):
                    continue
                async with conn.transaction():  # one transaction per migration
                    await conn.execute(step.script(self.dialect, namespace).encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                        (namespace, step.version, self.now()),
                    )
                applied.append((namespace, step.version))
        return applied

    async def migrations_applied(self) -> dict[str, int]:
        async def read(conn: Conn) -> dict[str, int]:
            cursor = await conn.execute(
                "SELECT namespace, max(version) FROM schema_migrations GROUP BY 1"
            )
            return {str(ns): int(v) for ns, v in await cursor.fetchall()}

        return await self._read(read)

    # -- runs --------------------------------------------------------------------------

    async def create_run(
        self, run: NewRun, *, claim: bool = True, records: Sequence[Event] = ()
    ) -> Created:
        if records and not claim:
            raise ValueError("records need the claim of the run they start")

        async def create(conn: Conn) -> Created:
            now = self.now()
            owner = self.token if claim else None
            cursor = await conn.execute(
                "INSERT INTO runs (run_id, saga, state, definition_hash, definition, inputs,"
                " plugin_versions, created, updated, owner, fence, last_seq, node,"
                " lease_expires) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s,"
                " CASE WHEN %s THEN now() + make_interval(secs => %s) END)"
                " ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
                (
                    run.run_id,
                    run.saga,
                    RunState.QUEUED.value,
                    run.definition_hash,
                    _dumps(run.definition),
                    _dumps(run.inputs),
                    _dumps(run.plugin_versions),
                    now,
                    now,
                    owner,
                    1 if claim else 0,
                    run.node,
                    claim,
                    self.lease,
                ),
            )
            if await cursor.fetchone() is None:
                existing = await _get(conn, run.run_id)
                if existing.definition_hash != run.definition_hash:
                    raise RunExists(
                        f"run {run.run_id} already exists for {existing.saga}"
                        f" (definition {existing.definition_hash[:12]}), not this definition"
                    )
                return Created(existing, False, None)
            data = {"state": "queued", "saga": run.saga, "definition_hash": run.definition_hash}
            await conn.execute(
                "INSERT INTO run_log VALUES (%s, 1, %s, 'run_created', NULL, %s)",
                (run.run_id, now, _dumps(data)),
            )
            taken = Claim(run.run_id, owner, 1) if owner else None
            written = [Event(run.run_id, "run_created", None, data, now, 1)]
            if records and taken is not None:
                written += await _append(conn, taken, records, None, now)
            if taken is None:
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, run.run_id))
            return Created(await _get(conn, run.run_id), True, taken, written)

        created = await self._write(create)
        if created.claim is not None and created.run.owner == self.token:
            self._held[run.run_id] = created.claim
        return created

    async def get_run(self, run_id: str) -> RunRecord:
        return await self._read(lambda conn: _get(conn, run_id))

    async def list_runs(
        self,
        *,
        states: Collection[str] | None = None,
        limit: int = 1000,
        saga: str | None = None,
    ) -> list[RunRecord]:
        sql = (
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE (%(states)s::text[] IS NULL"
            " OR state = ANY(%(states)s)) AND (%(saga)s::text IS NULL OR saga = %(saga)s)"
            " ORDER BY created, run_id LIMIT %(limit)s"
        )
        params = {"states": None if states is None else list(states), "saga": saga, "limit": limit}

        async def read(conn: Conn) -> list[RunRecord]:
            cursor = await conn.execute(sql, params)
            return [record_from_row(row) for row in await cursor.fetchall()]

        return await self._read(read)

    async def page_runs(
        self,
        *,
        states: Collection[str] | None = None,
        saga: str | None = None,
        q: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunSummary]:
        sql, params = page_sql(
            self.dialect, states=states, saga=saga, q=q, before=before, limit=limit
        )

        async def read(conn: Conn) -> list[RunSummary]:
            cursor = await conn.execute(sql, params)
            return summaries(await cursor.fetchall())

        return await self._read(read)

    async def census(self) -> list[tuple[str, str, int, float]]:
        async def read(conn: Conn) -> list[tuple[str, str, int, float]]:
            cursor = await conn.execute(CENSUS_SQL)
            return [tuple(row) for row in await cursor.fetchall()]

        return await self._read(read)

    async def read_log(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        async def read(conn: Conn) -> list[Event]:
            cursor = await conn.execute(
                "SELECT seq, at, kind, action, data FROM run_log"
                " WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (run_id, after_seq, limit),
            )
            return [
                Event(run_id, kind, action, json.loads(data), at, seq)
                for seq, at, kind, action, data in await cursor.fetchall()
            ]

        return await self._read(read)

    async def checkpoints(self, run_id: str) -> dict[str, JSON]:
        return await self._read(_by_action("action_checkpoints", run_id))

    async def progress(self, run_id: str) -> dict[str, JSON]:
        return await self._read(_by_action("action_progress", run_id))

    # -- ownership ---------------------------------------------------------------------

    async def claim(self, run_id: str) -> Claim:
        async def take(conn: Conn) -> Claim:
            taken = await self._take(conn, "run_id = %s", (run_id,), 1)
            if taken:
                return taken[0]
            cursor = await conn.execute("SELECT owner FROM runs WHERE run_id = %s", (run_id,))
            row = await cursor.fetchone()
            if row is None:
                raise RunNotFound(f"no run {run_id!r} in {_redact(self.url)}")
            raise RunBusy(run_id, None if row[0] == self.token else row[0])

        claim = await self._write(take)
        self._held[run_id] = claim
        return claim

    async def claim_next(
        self,
        limit: int,
        *,
        states: Collection[str] | None = None,
        exclude: Collection[str] = (),
    ) -> list[Claim]:
        """Claim up to `limit` runnable runs nobody live holds and pinned to no other node,
        oldest first, skipping rows other workers are claiming (`SKIP LOCKED`) and the
        runs in `exclude` (ones this worker just failed to drive)."""
        wanted = sorted(states or [str(s) for s in UNFINISHED])
        where = "state = ANY(%s) AND (node IS NULL OR node = %s) AND run_id <> ALL(%s)"

        async def take(conn: Conn) -> list[Claim]:
            return await self._take(conn, where, (wanted, self.node, list(exclude)), limit)

        claims = await self._write(take)
        for claim in claims:
            self._held[claim.run_id] = claim
        return claims

    async def _take(
        self, conn: Conn, where: str, params: tuple[Any, ...], limit: int
    ) -> list[Claim]:
        cursor = await conn.execute(
            "WITH c AS (SELECT run_id, owner FROM runs WHERE " + where + " AND (owner IS NULL"
            " OR lease_expires < now()) ORDER BY created, run_id LIMIT %s"
            " FOR UPDATE SKIP LOCKED)"
            " UPDATE runs r SET owner = %s, fence = r.fence + 1,"
            " lease_expires = now() + make_interval(secs => %s)"
            " FROM c WHERE r.run_id = c.run_id RETURNING r.run_id, r.fence, c.owner",
            (*params, limit, self.token, self.lease),
        )
        rows = await cursor.fetchall()
        taken_over = sum(1 for row in rows if row[2] is not None)
        if taken_over:
            await conn.execute(
                "INSERT INTO counters VALUES ('taken_over', %s) ON CONFLICT (name)"
                " DO UPDATE SET value = counters.value + excluded.value",
                (taken_over,),
            )
        return [Claim(run_id, self.token, int(fence)) for run_id, fence, _ in rows]

    async def release(self, claim: Claim) -> None:
        async def release(conn: Conn) -> None:
            cursor = await conn.execute(
                "UPDATE runs SET owner = NULL, lease_expires = NULL"
                " WHERE run_id = %s AND owner = %s AND fence = %s RETURNING state",
                (claim.run_id, claim.owner, claim.fence),
            )
            row = await cursor.fetchone()
            if row is not None and RunState(row[0]) not in FINISHED:
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, claim.run_id))

        # Forget it first: even if the release cannot be written (the server is away),
        # the heartbeat must stop renewing a lease nobody drives, so it expires.
        if self._held.get(claim.run_id) == claim:
            del self._held[claim.run_id]
        await self._write(release)

    async def orphans(self, states: Collection[str]) -> list[str]:
        async def read(conn: Conn) -> list[str]:
            cursor = await conn.execute(
                "SELECT run_id FROM runs WHERE state = ANY(%s)"
                " AND (owner IS NULL OR lease_expires < now()) ORDER BY created, run_id",
                (list(states),),
            )
            return [row[0] for row in await cursor.fetchall()]

        return await self._read(read)

    async def heartbeat(self) -> set[str]:
        if not self._held:
            return set()
        held = dict(self._held)

        async def renew(conn: Conn) -> set[str]:
            cursor = await conn.execute(
                "UPDATE runs SET lease_expires = now() + make_interval(secs => %s)"
                " WHERE owner = %s AND run_id = ANY(%s) RETURNING run_id, fence",
                (self.lease, self.token, list(held)),
            )
            return {
                run_id for run_id, fence in await cursor.fetchall() if held[run_id].fence == fence
            }

        renewed = await self._write(renew)
        lost = set(held) - renewed
        for run_id in lost:
            if self._held.get(run_id) == held[run_id]:
                del self._held[run_id]
        return lost

    async def wait_for_work(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Block until a run is announced (NOTIFY) or `timeout` passes; True if announced."""
        try:
            if self._listener is None or self._listener.closed or self._listener.broken:
                self._listener = await self._connect(autocommit=True)
                await self._listener.execute(f"LISTEN {CHANNEL}")
            async for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except (psycopg.OperationalError, StoreError):
            self._listener = None
            await anyio.sleep(min(timeout, 1.0))  # the server is away: poll instead
            return False

    # -- writes under a claim ----------------------------------------------------------

    async def append(
        self,
        claim: Claim,
        records: Sequence[Event],
        *,
        progress: Mapping[str, JSON] | None = None,
    ) -> list[Event]:
        now = self.now()
        numbered = await self._write(lambda conn: _append(conn, claim, records, progress, now))
        self._forget_if_released(claim, numbered)
        return numbered

    def _forget_if_released(self, claim: Claim, numbered: Sequence[Event]) -> None:
        released = any(run_state_of(e) in RELEASING for e in numbered)
        if released and self._held.get(claim.run_id) == claim:
            del self._held[claim.run_id]

    async def begin(self, claim: Claim) -> StoreTransaction:
        conn = self._idle.pop() if self._idle else await self._connect()
        return PostgresTransaction(self, conn, claim)

    async def save_checkpoint(self, claim: Claim, action: str, data: JSON) -> None:
        text, now = _dumps(data), self.now()

        async def save(conn: Conn) -> None:
            await _check_claim(conn, claim)
            await conn.execute(
                "INSERT INTO action_checkpoints VALUES (%s, %s, %s, %s) ON CONFLICT"
                " (run_id, action) DO UPDATE SET at = excluded.at, data = excluded.data",
                (claim.run_id, action, now, text),
            )

        await self._write(save)

    async def pin_node(self, claim: Claim, node: str | None = None) -> None:
        pinned = node or self.node

        async def pin(conn: Conn) -> None:
            await _check_claim(conn, claim)
            await conn.execute(
                "UPDATE runs SET node = %s WHERE run_id = %s", (pinned, claim.run_id)
            )

        await self._write(pin)

    async def stats(self) -> dict[str, int]:
        async def read(conn: Conn) -> dict[str, int]:
            row = await (await conn.execute(STATS_SQL)).fetchone()
            assert row is not None
            return {name: int(value) for name, value in zip(STATS_NAMES, row, strict=True)}

        return await self._read(read)

    # -- operator requests -------------------------------------------------------------

    async def request_cancel(self, run_id: str) -> None:
        async def flag(conn: Conn) -> None:
            cursor = await conn.execute(
                "UPDATE runs SET cancel_requested = true WHERE run_id = %s", (run_id,)
            )
            if cursor.rowcount == 0:
                raise RunNotFound(f"no run {run_id!r} in {_redact(self.url)}")

        await self._write(flag)

    async def cancel_requested(self, run_id: str) -> bool:
        return run_id in await self.cancel_requests([run_id])

    async def cancel_requests(self, run_ids: Collection[str]) -> set[str]:
        async def read(conn: Conn) -> set[str]:
            cursor = await conn.execute(
                "SELECT run_id FROM runs WHERE cancel_requested AND run_id = ANY(%s)",
                (list(run_ids),),
            )
            return {row[0] for row in await cursor.fetchall()}

        return await self._read(read)

    # -- retention ---------------------------------------------------------------------

    async def prune(self, *, finished_before: float, page: int = 500) -> int:
        async def delete_page(conn: Conn) -> int:
            cursor = await conn.execute(
                "DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs"
                " WHERE finished IS NOT NULL AND finished < %s ORDER BY finished LIMIT %s)",
                (finished_before, page),
            )
            return cursor.rowcount

        total = 0
        while True:
            deleted = await self._write(delete_page)
            total += deleted
            if deleted < page:
                return total


class PostgresTransaction(StoreTransaction):
    """An action's writes on their own connection, committed with its completion records
    under the fence check (or rolled back)."""

    dialect = "postgresql"

    def __init__(self, store: PostgresStore, conn: Conn, claim: Claim) -> None:
        self._store = store
        self._conn: Conn | None = conn
        self._claim = claim
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
            _drop(self._conn)
            self._conn = await self._store._connect()
            return await self._conn.execute(query, tuple(params))
        finally:
            self._fresh = False

    async def execute(self, sql: str, params: Sequence[JSON] = ()) -> int:
        async with self._lock:
            return (await self._cursor(sql, params)).rowcount

    async def fetchone(self, sql: str, params: Sequence[JSON] = ()) -> tuple[JSON, ...] | None:
        async with self._lock:
            row = await (await self._cursor(sql, params)).fetchone()
        return None if row is None else tuple(row)

    async def fetchall(self, sql: str, params: Sequence[JSON] = ()) -> list[tuple[JSON, ...]]:
        async with self._lock:
            rows = await (await self._cursor(sql, params)).fetchall()
        return [tuple(row) for row in rows]

    async def commit(
        self, records: Sequence[Event], *, progress: Mapping[str, JSON] | None = None
    ) -> list[Event]:
        now = self._store.now()
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError("the transaction is already finished")
            try:
                with anyio.CancelScope(shield=True):
                    numbered = await _append(conn, self._claim, records, progress, now)
                    await conn.commit()
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
                raise
            finally:
                self._finish()
        self._store._forget_if_released(self._claim, numbered)
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
        if conn is None:
            return
        if conn.broken or len(self._store._idle) >= 4 or not self._store._open:
            _drop(conn)
        else:
            self._store._idle.append(conn)


def _drop(conn: Conn) -> None:
    """Drop a connection without waiting (its socket closes; the server rolls back)."""
    with contextlib.suppress(Exception):
        conn.pgconn.finish()


# -- row helpers -----------------------------------------------------------------------


async def _check_claim(conn: Conn, claim: Claim) -> None:
    cursor = await conn.execute(
        "SELECT 1 FROM runs WHERE run_id = %s AND owner = %s AND fence = %s FOR UPDATE",
        (claim.run_id, claim.owner, claim.fence),
    )
    if await cursor.fetchone() is None:
        raise ClaimLost(claim.run_id)


async def _append(
    conn: Conn,
    claim: Claim,
    records: Sequence[Event],
    progress: Mapping[str, JSON] | None,
    now: float,
) -> list[Event]:
    """Number and insert `records`, moving the run row on, if `claim` is current."""
    state: RunState | None = None
    error = code = None
    for record in records:
        moved = run_state_of(record)
        if moved is not None:
            state, error, code = moved, record.data.get("error"), record.data.get("code")
    moved_to = None if state is None else state.value
    releasing = state in RELEASING
    cursor = await conn.execute(
        "UPDATE runs SET last_seq = last_seq + %(n)s, updated = %(now)s,"
        " state = coalesce(%(state)s::text, state),"
        " error = CASE WHEN %(state)s::text IS NULL THEN error ELSE %(error)s::text END,"
        " error_code = CASE WHEN %(state)s::text IS NULL THEN error_code"
        " ELSE %(code)s::text END,"
        " started = coalesce(started, %(started)s::float8),"
        " finished = CASE WHEN %(state)s::text IS NULL THEN finished"
        " ELSE %(finished)s::float8 END,"
        " owner = CASE WHEN %(release)s THEN NULL ELSE owner END,"
        " lease_expires = CASE WHEN %(release)s THEN NULL ELSE lease_expires END"
        " WHERE run_id = %(run)s AND owner = %(owner)s AND fence = %(fence)s RETURNING last_seq",
        {
            "n": len(records),
            "now": now,
            "state": moved_to,
            "error": None if error is None else str(error),
            "code": None if code is None else str(code),
            "started": now if state is RunState.RUNNING else None,
            "finished": now if state in FINISHED else None,
            "release": releasing,
            "run": claim.run_id,
            "owner": claim.owner,
            "fence": claim.fence,
        },
    )
    row = await cursor.fetchone()
    if row is None:
        raise ClaimLost(claim.run_id)
    first = int(row[0]) - len(records) + 1
    numbered = [
        Event(claim.run_id, r.kind, r.action, r.data, r.at or now, first + i)
        for i, r in enumerate(records)
    ]
    if numbered:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO run_log VALUES (%s, %s, %s, %s, %s, %s)",
                [(e.run_id, e.seq, e.at, e.kind, e.action, _dumps(dict(e.data))) for e in numbered],
            )
    if progress:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO action_progress VALUES (%s, %s, %s, %s) ON CONFLICT (run_id, action)"
                " DO UPDATE SET at = excluded.at, data = excluded.data",
                [(claim.run_id, action, now, _dumps(data)) for action, data in progress.items()],
            )
    return numbered


async def _get(conn: Conn, run_id: str) -> RunRecord:
    cursor = await conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = %s", (run_id,))
    row = await cursor.fetchone()
    if row is None:
        raise RunNotFound(f"no run {run_id!r}")
    return record_from_row(row)


def _by_action(table: str, run_id: str) -> Callable[[Conn], Awaitable[dict[str, JSON]]]:
    async def read(conn: Conn) -> dict[str, JSON]:
        cursor = await conn.execute(
            f"SELECT action, data FROM {table} WHERE run_id = %s", (run_id,)
        )
        return {action: json.loads(data) for action, data in await cursor.fetchall()}

    return read


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
