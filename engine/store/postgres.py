"""The PostgreSQL store: many workers on many machines, claims as leases with fencing.

A claim is a lease: the run row records its owner, a fence that rises on every claim, and
`lease_expires` computed with the database clock (`now()`), never a worker's. The owner
renews its leases with `heartbeat`; a run whose lease ran out is claimed by anyone, with a
higher fence. Every write of a run is an UPDATE conditional on (owner, fence) in the same
transaction, so a worker that lost its lease (paused, partitioned) can write nothing more.

Writes share commits (`postgres_writer.py`). New and handed-back runs are announced with
NOTIFY on `sagactl_runs`. The SQL is the stores' shared SQL (`sql.py`) but for the leases.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import anyio
import psycopg

from ..action import JSON
from ..errors import RunNotFound
from ..events import Event
from ..settings import LEASE
from ..states import FINISHED, UNFINISHED, RunState, run_state_of
from . import parking_sql
from . import postgres_leases as leases
from .base import (
    RELEASING,
    Claim,
    ClaimLost,
    Created,
    NewRun,
    RunBusy,
    RunRecord,
    StoreError,
    StoreTransaction,
    StoreUnusable,
    this_node,
)
from .migrations import pending
from .postgres_transaction import SQL, PostgresTransaction, send_append, write_append
from .postgres_writer import (
    Conn,
    GroupCommit,
    Params,
    connect,
    drop,
    pipelined_reads,
    redact,
    row,
    rows,
)
from .sql import Appending, Row, created_before, creation, dumps, record_from_row
from .sql import translate as translate
from .sql_store import Params as SqlParams
from .sql_store import SqlStore

T = TypeVar("T")
# pg_advisory_lock key of schema migrations: every worker starting on an empty database
# waits for the first to finish instead of racing it into duplicate CREATE TABLEs.
MIGRATION_LOCK = 0x5A6A_C711
IDLE_CONNECTIONS = 4
"""Transaction connections kept open for the next transaction."""


class PostgresStore(SqlStore):
    """A `Store` in one PostgreSQL database (`postgresql://...`)."""

    dialect: ClassVar[str] = "postgresql"
    sql = SQL
    no_limit = None

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
        # $SAGACTL_LEASE is range-checked where it is read; a caller (a test, a benchmark)
        # may ask for a shorter lease, never a non-positive or infinite one.
        self.lease = LEASE.read() if lease is None else lease
        if not 0 < self.lease < math.inf:
            raise ValueError(f"lease {self.lease!r}: expected a positive number of seconds")
        self.heartbeat_interval = self.lease / 3
        self.node = node or this_node()
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
        self._held: dict[str, Claim] = {}
        self._writer = GroupCommit(lambda: self._connect(autocommit=True))
        self._reader: Conn | None = None
        self._listener: Conn | None = None
        self._read_lock = anyio.Lock()
        self._idle: list[Conn] = []

    @property
    def _open(self) -> bool:
        return self._writer.open

    @property
    def commits(self) -> int:
        """Write transactions committed by group commit (for tests and benchmarks)."""
        return self._writer.commits

    # -- lifecycle ---------------------------------------------------------------------

    async def _connect(self, *, autocommit: bool = False, retry: bool = True) -> Conn:
        """A new connection, retried for up to `reconnect` seconds while the server is
        away (restarting)."""
        return await connect(
            self.url, autocommit=autocommit, retry_for=self.reconnect if retry else 0.0
        )

    async def open(self) -> None:
        try:
            self._writer.connection = await self._connect(autocommit=True, retry=False)
            self._reader = await self._connect(autocommit=True, retry=False)
        except StoreError as exc:
            if self._writer.connection is not None:
                await self._writer.connection.close()
            self._writer.connection = None
            raise StoreUnusable(" ".join(str(exc).split())) from None
        self._writer.open = True
        await self.upgrade()

    async def close(self) -> None:
        if not self._open:
            return
        self._writer.open = False
        writer = self._writer.connection
        # Hand back every lease still held: other workers take those runs over at once.
        if self._held and writer is not None and not writer.closed:
            with contextlib.suppress(psycopg.Error):
                await leases.end_leases(writer, self.token)
        self._held.clear()
        for conn in [writer, self._reader, self._listener, *self._idle]:
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
        self._writer.connection = self._reader = self._listener = None
        self._idle.clear()

    # -- plumbing ----------------------------------------------------------------------

    async def _on_reader(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """`fn` on the reader connection (autocommit), once more on a new connection if the
        server went away."""
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

    async def _query(self, sql: str, params: SqlParams = ()) -> list[Row]:
        found = await self._on_reader(lambda conn: rows(conn, sql, _params(params)))
        return list(found)

    async def _queries(self, reads: Sequence[tuple[str, SqlParams]]) -> list[list[Row]]:
        """The reads pipelined in one read-only transaction: one round trip, one snapshot."""
        sent = [(sql, _params(params)) for sql, params in reads]
        found = await self._on_reader(lambda conn: pipelined_reads(conn, sent))
        return [list(rows_) for rows_ in found]

    async def _write_count(self, sql: str, params: SqlParams = ()) -> int:
        async def write(conn: Conn) -> int:
            return (await conn.execute(sql, _params(params))).rowcount

        return await self._writer.submit(write)

    def _not_found(self, run_id: str) -> RunNotFound:
        return RunNotFound(f"no run {run_id!r} in {redact(self.url)}")

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
        await conn.execute(SQL.migrations_table.encode())
        found = await rows(conn, SQL.migrations_applied)
        applied = {row["namespace"]: row["version"] for row in found}
        done: list[tuple[str, int]] = []
        for namespace, step in pending(applied):
            async with conn.transaction():  # one transaction per migration
                await conn.execute(step.script(self.dialect, namespace).encode())
                await conn.execute(SQL.record_migration, (namespace, step.version, self.now()))
            done.append((namespace, step.version))
        return done

    # -- runs --------------------------------------------------------------------------

    async def create_run(
        self, run: NewRun, *, claim: bool = True, records: Sequence[Event] = ()
    ) -> Created:
        if records and not claim:
            raise ValueError("records need the claim of the run they start")
        now = self.now()
        new = creation(run, self.token if claim else None, now)

        async def create(conn: Conn) -> Created:
            if run.concurrency_key is not None:  # its place on the key, in commit order
                await conn.execute(parking_sql.PG_KEY_LOCK, (run.concurrency_key,))
            if await row(conn, SQL.insert_run, dict(new.params)) is None:
                return created_before(await _get(conn, run.run_id), run)
            async with conn.pipeline():  # the definition and the first record: one round trip
                await conn.execute(SQL.insert_definition, new.definition_row)
                await conn.execute(SQL.insert_log, new.log_row)
            written = [new.record]
            if new.claim is None:
                await leases.notify(conn, run.run_id)
            else:
                await leases.start_lease(conn, run.run_id, self.lease)
                if records:
                    appending = Appending(new.claim, records, None, now)
                    written += appending.numbered(await write_append(conn, appending, self.lease))
            return Created(await _get(conn, run.run_id), True, new.claim, written)

        created = await self._writer.submit(create)
        if created.claim is not None and created.run.owner == self.token:
            self._held[run.run_id] = created.claim
        return created

    # -- ownership ---------------------------------------------------------------------

    async def claim(self, run_id: str) -> Claim:
        async def take(conn: Conn) -> Claim:
            taken = await self._take(conn, "run_id = %s", (run_id,), limit=1)
            if taken:
                return taken[0]
            found = await row(conn, SQL.owner_of, (run_id,))
            if found is None:
                raise self._not_found(run_id)
            raise RunBusy(run_id, None if found["owner"] == self.token else found["owner"])

        claim = await self._writer.submit(take)
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
        runs in `exclude` (ones this worker just failed to drive). Waiting runs are
        runnable once due, queued ones with a concurrency key once their turn came."""
        wanted = sorted(states or [str(s) for s in UNFINISHED])
        # A child saga's run is driven by its parent, never claimed on its own.
        where = (
            f"(state = ANY(%s) OR {parking_sql.PG_DUE}) AND {parking_sql.ADMITTED}"
            " AND (node IS NULL OR node = %s) AND run_id <> ALL(%s)"
            " AND parent_run_id IS NULL"
        )

        async def take(conn: Conn) -> Callable[[], Awaitable[list[Claim]]]:
            params = (wanted, self.node, list(exclude))
            return await leases.send_take(
                conn, where, params, limit=limit, token=self.token, lease=self.lease
            )

        claims = await self._writer.submit_pipelined(take)
        for claim in claims:
            self._held[claim.run_id] = claim
        return claims

    async def _take(
        self, conn: Conn, where: str, params: tuple[Any, ...], *, limit: int
    ) -> list[Claim]:
        return await leases.take(
            conn, where, params, limit=limit, token=self.token, lease=self.lease
        )

    async def release(self, claim: Claim) -> None:
        async def release(conn: Conn) -> None:
            params = {"run": claim.run_id, "owner": claim.owner, "fence": claim.fence}
            released = await row(conn, SQL.release, params)
            if released is not None and RunState(released["state"]) not in FINISHED:
                await leases.notify(conn, claim.run_id)

        # Forget it first: even if the release cannot be written (the server is away),
        # the heartbeat must stop renewing a lease nobody drives, so it expires.
        if self._held.get(claim.run_id) == claim:
            del self._held[claim.run_id]
        await self._writer.submit(release)

    async def orphans(self, states: Collection[str]) -> list[str]:
        return [r["run_id"] for r in await self._query(SQL.unheld(len(states)), list(states))]

    async def heartbeat(self) -> set[str]:
        if not self._held:
            return set()
        held = dict(self._held)

        lost = set(held) - await self._renew(held)
        for run_id in lost:
            if self._held.get(run_id) == held[run_id]:
                del self._held[run_id]
        return lost

    async def _renew(self, held: Mapping[str, Claim]) -> set[str]:
        """Renewals go on the reader connection (one statement waiting for no lock), never
        queued behind a group commit, and need no connection of their own."""
        return await self._on_reader(
            lambda conn: leases.renew(conn, held, token=self.token, lease=self.lease)
        )

    async def wake(self, run_id: str) -> bool:
        async def wake(conn: Conn) -> None:
            await conn.execute(translate(parking_sql.WAKE), (self.now(), run_id))
            await leases.notify(conn, run_id)

        await self._writer.submit(wake)
        return True

    async def wait_for_work(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Block until a run is announced (NOTIFY) or `timeout` passes; True if announced."""
        try:
            if self._listener is None or self._listener.closed or self._listener.broken:
                self._listener = await self._connect(autocommit=True)
                await leases.listen(self._listener)
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
        numbered: bool = True,
    ) -> list[Event]:
        appending = Appending(claim, records, progress, self.now())
        last_seq = await self._writer.submit_pipelined(
            lambda conn: send_append(conn, appending, self.lease)
        )
        self._forget_if_released(claim, records)
        return appending.numbered(last_seq) if numbered else []

    def _forget_if_released(self, claim: Claim, records: Sequence[Event]) -> None:
        released = any(run_state_of(e) in RELEASING for e in records)
        if released and self._held.get(claim.run_id) == claim:
            del self._held[claim.run_id]

    async def begin(self, claim: Claim) -> StoreTransaction:
        return await self._begin(claim)

    async def _begin_unclaimed(self) -> StoreTransaction:
        return await self._begin(None)

    async def _begin(self, claim: Claim | None) -> StoreTransaction:
        if not self._open:
            raise StoreError("the store is closed")
        conn = self._idle.pop() if self._idle else await self._connect(autocommit=True)
        return PostgresTransaction(
            conn,
            claim,
            reconnect=lambda: self._connect(autocommit=True),
            give_back=self._give_back,
            committed=self._forget_if_released,
            lease=self.lease,
        )

    def _give_back(self, conn: Conn) -> None:
        """Keep a finished transaction's connection for the next one (a few at most)."""
        if conn.broken or len(self._idle) >= IDLE_CONNECTIONS or not self._open:
            drop(conn)
        else:
            self._idle.append(conn)

    async def save_checkpoint(self, claim: Claim, action: str, data: JSON) -> None:
        saved = (claim.run_id, action, self.now(), dumps(data))

        async def save(conn: Conn) -> None:
            await _check_claim(conn, claim)
            await conn.execute(SQL.save_checkpoint, saved)

        await self._writer.submit(save)

    async def pin_node(self, claim: Claim, node: str | None = None) -> None:
        pinned = node or self.node

        async def pin(conn: Conn) -> None:
            await _check_claim(conn, claim)
            await conn.execute(SQL.pin_node, (pinned, claim.run_id))

        await self._writer.submit(pin)


async def _get(conn: Conn, run_id: str) -> RunRecord:
    found = await row(conn, SQL.get_run, (run_id,))
    if found is None:
        raise RunNotFound(f"no run {run_id!r}")
    return record_from_row(found)


async def _check_claim(conn: Conn, claim: Claim) -> None:
    params = {"run": claim.run_id, "owner": claim.owner, "fence": claim.fence}
    if await row(conn, SQL.check_claim, params) is None:
        raise ClaimLost(claim.run_id)


def _params(params: SqlParams) -> Params:
    return params if isinstance(params, dict) else tuple(params)
