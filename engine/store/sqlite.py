"""The SQLite store: the embedded default, several processes on one host sharing one file.

WAL, `synchronous=FULL` (a commit is on disk before it is acknowledged), `BEGIN
IMMEDIATE`, a busy timeout and foreign keys on. No SQLite call runs on the event loop:
writes go through the group-commit thread (`writer.py`), reads and transactions through
worker threads; but with `commit_on_loop`, where commits run on the loop while the lock is
free. A run's owner is a live store on this host (`ownership.py`), found by the
database file's real path (`sqlite_file.py`). The SQL is the stores' shared SQL (`sql.py`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import ClassVar, TypeVar

import anyio
import anyio.to_thread

from ..action import JSON
from ..errors import RunNotFound
from ..events import Event
from .base import (
    Claim,
    ClaimLost,
    Created,
    NewRun,
    RunBusy,
    StoreError,
    StoreTransaction,
    StoreUnusable,
    this_node,
)
from .migrations import pending
from .ownership import OwnerLock
from .sql import (
    Appending,
    Row,
    created_before,
    created_record,
    creation,
    dumps,
    numbered,
    record_from_row,
    with_nulls,
)
from .sql_store import Params, SqlStore
from .sqlite_file import (
    check_database_file,
    database_path,
    is_unusable,
    reason,
    run_not_found,
    unusable,
)
from .sqlite_transaction import SQL, KnownSeqs, SqliteTransaction, write_append
from .writer import GroupCommitWriter, WriteConnection

T = TypeVar("T")

IDLE_CONNECTIONS = 4
"""Transaction connections kept open for the next transaction."""


class SqliteStore(SqlStore):
    """A `Store` in one SQLite file."""

    dialect: ClassVar[str] = "sqlite"
    appends_shielded: ClassVar[bool] = True  # (the writer shields a request's wait)
    sql = SQL
    no_limit = -1

    def __init__(
        self, url: str, *, busy_timeout: float = 60.0, commit_on_loop: bool = False
    ) -> None:
        """`commit_on_loop`: commit on the event loop itself while the write lock is free,
        for a process whose loop serves only its sagas (a CLI command): cheaper, and a
        chain's steps do not wait for a thread, but each fsync blocks the loop."""
        self.url = url
        self.path = database_path(url)
        self.busy_timeout = busy_timeout
        self.commit_on_loop = commit_on_loop
        self.owner = OwnerLock(self.path.with_name(self.path.name + ".owners"))
        self._writer = GroupCommitWriter(
            self._connect, connect_on_loop=self._connect_unwaiting if commit_on_loop else None
        )
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._idle: list[WriteConnection] = []
        self._one_writer: anyio.Semaphore | None = None
        self._read_turns: anyio.CapacityLimiter | None = None
        self._known = KnownSeqs()

    # -- lifecycle ---------------------------------------------------------------------

    def _connect(self, busy_timeout: float | None = None) -> WriteConnection:
        """A connection with the store's settings; every connection of the store (writer,
        reader, transactions) comes from here."""
        timeout = self.busy_timeout if busy_timeout is None else busy_timeout
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=timeout,
            factory=WriteConnection,
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"{self.path}: cannot switch to WAL (journal_mode is {mode})")
        return conn

    def _connect_unwaiting(self) -> WriteConnection:
        """The connection for commits on the loop: it fails at once when the lock is taken."""
        return self._connect(busy_timeout=0)

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._open_sync)
        await self.upgrade()

    def _open_sync(self) -> None:
        check_database_file(self.path)
        try:
            self.owner.acquire()
        except OSError as exc:
            where = self.owner.directory
            raise StoreUnusable(f"{where}: cannot take the owner lock: {reason(exc)}") from None
        try:
            self._writer.start()
            self._reader = self._connect()
        except BaseException as exc:
            self._writer.stop()
            self.owner.release()
            if isinstance(exc, sqlite3.Error | StoreError) and not isinstance(exc, StoreUnusable):
                cause = exc.__cause__ or exc
                raise StoreUnusable(f"{self.path}: cannot open the database: {cause}") from None
            raise

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._close_sync)

    def _close_sync(self) -> None:
        self._writer.stop()
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        self.owner.release()

    @property
    def commits(self) -> int:
        """Write transactions committed by the group-commit writer (thread or loop)."""
        return self._writer.commits

    # -- plumbing ----------------------------------------------------------------------

    async def _write(self, fn: Callable[[WriteConnection], T]) -> T:
        try:
            return await self._writer.submit(fn)
        except sqlite3.DatabaseError as exc:
            if is_unusable(exc):
                raise unusable(self.path, exc) from None
            raise

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with self._read_lock:
                if self._reader is None:
                    raise StoreError("the store is closed")
                return fn(self._reader)

        # Reads take turns on one connection: they queue here, not each in a worker
        # thread of the shared pool blocked on the lock (hundreds of SSE readers would
        # hold every thread, and the actions' own work would wait behind them).
        if self._read_turns is None:
            self._read_turns = anyio.CapacityLimiter(1)
        try:
            return await anyio.to_thread.run_sync(run, limiter=self._read_turns)
        except sqlite3.DatabaseError as exc:
            if is_unusable(exc):
                raise unusable(self.path, exc) from None
            raise

    def _not_found(self, run_id: str) -> RunNotFound:
        return run_not_found(self.path, run_id)

    async def _query(self, sql: str, params: Params = ()) -> list[Row]:
        rows: list[Row] = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        return rows

    async def _write_count(self, sql: str, params: Params = ()) -> int:
        return await self._write(lambda conn: conn.execute(sql, params).rowcount)

    # -- migrations --------------------------------------------------------------------

    async def upgrade(self) -> list[tuple[str, int]]:
        if await self._read(self._up_to_date):
            return []  # every start of every command: a read, no write transaction
        return await self._write(self._upgrade)

    def _up_to_date(self, conn: sqlite3.Connection) -> bool:
        """Whether every registered migration is applied (False: not known yet)."""
        try:
            rows = conn.execute(SQL.migrations_applied).fetchall()
        except sqlite3.OperationalError:  # a new database: no migrations table yet
            return False
        return not pending({row["namespace"]: row["version"] for row in rows})

    def _upgrade(self, conn: sqlite3.Connection) -> list[tuple[str, int]]:
        conn.execute(SQL.migrations_table)
        applied = {row["namespace"]: row["version"] for row in conn.execute(SQL.migrations_applied)}
        done: list[tuple[str, int]] = []
        for namespace, step in pending(applied):
            try:
                for statement in split_statements(step.script(self.dialect, namespace)):
                    conn.execute(statement)
            except sqlite3.Error as exc:  # e.g. a store an unreleased build migrated
                raise StoreUnusable(
                    f"{self.path}: cannot apply migration {namespace} v{step.version}"
                    f" ({step.description}): {exc}"
                ) from None
            conn.execute(SQL.record_migration, (namespace, step.version, self.now()))
            done.append((namespace, step.version))
        return done

    # -- runs --------------------------------------------------------------------------

    async def create_run(
        self, run: NewRun, *, claim: bool = True, records: Sequence[Event] = ()
    ) -> Created:
        if records and not claim:
            raise ValueError("records need the claim of the run they start")
        now = self.now()
        new = creation(run, self.owner.token if claim else None, now)
        insert, values = numbered(with_nulls(SQL.insert_run, new.nulls))
        # Prepared here and finished below: the writer thread only runs the statements.
        appending = (
            Appending(new.claim, records, None, now) if records and new.claim is not None else None
        )

        def create(conn: WriteConnection) -> tuple[Row | None, int]:
            """The row of a run that was there (the id was taken before: 0), or None and
            the new run's `last_seq` as written."""
            if not conn.run(insert, values(new.params)).rowcount:
                return conn.execute(SQL.get_run, (run.run_id,)).fetchone(), 0
            conn.run(SQL.insert_definition, new.definition_row)
            conn.run(SQL.insert_log, new.log_row)
            if new.claim is None:
                return None, 1
            self._known.note(run.run_id, 1)
            return None, 1 if appending is None else write_append(conn, appending, self._known)

        row, last_seq = await self._write(create)
        if row is not None:
            return created_before(record_from_row(row), run)
        written = [new.record] + ([] if appending is None else appending.numbered(last_seq))
        return Created(created_record(run, new, appending), True, new.claim, written)

    # -- ownership ---------------------------------------------------------------------

    async def claim(self, run_id: str) -> Claim:
        token = self.owner.token

        def take(conn: sqlite3.Connection) -> Claim:
            row = conn.execute(SQL.owner_of, (run_id,)).fetchone()
            if row is None:
                raise self._not_found(run_id)
            owner = row["owner"]
            if owner is not None and self.owner.alive(owner):
                raise RunBusy(run_id, None if owner == token else owner)
            taken = conn.execute(
                "UPDATE runs SET owner = ?, fence = fence + 1 WHERE run_id = ? RETURNING fence",
                (token, run_id),
            ).fetchone()
            return Claim(run_id, token, int(taken["fence"]), taken_over=owner is not None)

        return await self._write(take)

    async def release(self, claim: Claim) -> None:
        params = {"run": claim.run_id, "owner": claim.owner, "fence": claim.fence}
        self._known.forget(claim.run_id)
        await self._write(lambda conn: conn.execute(SQL.release, params).fetchall())

    async def orphans(self, states: Collection[str]) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(SQL.unheld(len(states)), tuple(states)).fetchall()
            return [
                row["run_id"]
                for row in rows
                if row["owner"] is None or not self.owner.alive(row["owner"])
            ]

        return await self._read(read)

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
        last_seq = await self._write(lambda c: write_append(c, appending, self._known))
        return appending.numbered(last_seq) if numbered else []

    async def begin(self, claim: Claim) -> StoreTransaction:
        return await self._begin(claim)

    async def _begin_unclaimed(self) -> StoreTransaction:
        return await self._begin(None)

    async def _begin(self, claim: Claim | None) -> StoreTransaction:
        if self._reader is None:
            raise StoreError("the store is closed")

        def begin() -> WriteConnection:
            conn = self._idle.pop() if self._idle else self._connect()
            try:
                conn.run("BEGIN IMMEDIATE")
            except BaseException:
                conn.close()
                raise
            return conn

        # SQLite has one writer at a time. Waiting for it in a worker thread (the busy
        # timeout) would hold one of the pool's threads per waiting action: with enough
        # actions waiting, the one holding the lock finds no thread to commit with, and
        # every one of them times out. Waiting here costs no thread.
        if self._one_writer is None:
            self._one_writer = anyio.Semaphore(1)
        await self._one_writer.acquire()
        try:
            conn = await anyio.to_thread.run_sync(begin)
        except BaseException:
            self._one_writer.release()
            raise
        return SqliteTransaction(conn, claim, self._give_back, self._known)

    def _give_back(self, conn: WriteConnection) -> None:
        """Keep a finished transaction's connection for the next one (a few at most), and
        let the next `begin` in."""
        if conn.in_transaction or len(self._idle) >= IDLE_CONNECTIONS or self._reader is None:
            conn.close()
        else:
            self._idle.append(conn)
        if self._one_writer is not None:
            self._one_writer.release()

    async def save_checkpoint(self, claim: Claim, action: str, data: JSON) -> None:
        row = (claim.run_id, action, self.now(), dumps(data))

        def save(conn: sqlite3.Connection) -> None:
            _check_claim(conn, claim)
            conn.execute(SQL.save_checkpoint, row)

        await self._write(save)

    async def pin_node(self, claim: Claim, node: str | None = None) -> None:
        pinned = node or this_node()

        def pin(conn: sqlite3.Connection) -> None:
            _check_claim(conn, claim)
            conn.execute(SQL.pin_node, (pinned, claim.run_id))

        await self._write(pin)


# -- row helpers -----------------------------------------------------------------------


def _check_claim(conn: sqlite3.Connection, claim: Claim) -> None:
    params = {"run": claim.run_id, "owner": claim.owner, "fence": claim.fence}
    if conn.execute(SQL.check_claim, params).fetchone() is None:
        raise ClaimLost(claim.run_id)


def split_statements(script: str) -> list[str]:
    """A script's statements one by one (`executescript` would commit the transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
