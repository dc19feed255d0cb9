"""The SQLite store: the embedded default, several processes on one host sharing one file.

WAL, `synchronous=FULL` (a commit is on disk before it is acknowledged), `BEGIN
IMMEDIATE`, a busy timeout and foreign keys on. No SQLite call runs on the event loop:
writes go through the group-commit thread (`writer.py`), reads and action transactions
through worker threads. A run's owner is a live store on this host (`ownership.py`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.to_thread

from ..action import JSON
from ..errors import RunNotFound
from ..events import Event
from ..states import FINISHED, RunState, run_state_of
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
from .ownership import OwnerLock
from .pages import CENSUS_SQL, RunSummary, page_sql, summaries
from .writer import GroupCommitWriter

T = TypeVar("T")

_RUN_COLUMNS = (
    "run_id, saga, state, definition_hash, definition, inputs, plugin_versions, created,"
    " updated, started, finished, error, error_code, owner, cancel_requested, node"
)


# One encoder for every record: `json.dumps` with options builds a new encoder per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def _dumps(value: Any) -> str:
    return _ENCODE(value)


def path_of(url: str) -> Path:
    """`sqlite:///abs/path.db`, `sqlite://rel.db` or a bare path -> the file's path."""
    return Path(url[len("sqlite://") :] if url.startswith("sqlite://") else url)


class SqliteStore(Store):
    """A `Store` in one SQLite file."""

    dialect: ClassVar[str] = "sqlite"

    def __init__(self, url: str, *, busy_timeout: float = 60.0) -> None:
        self.url = url
        self.path = path_of(url)
        self.busy_timeout = busy_timeout
        self.owner = OwnerLock(self.path.with_name(self.path.name + ".owners"))
        self._writer = GroupCommitWriter(self._connect)
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._one_writer: anyio.Semaphore | None = None
        self._read_turns: anyio.CapacityLimiter | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"{self.path}: cannot switch to WAL (journal_mode is {mode})")
        return conn

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._open_sync)
        await self.upgrade()

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.owner.acquire()
        try:
            self._writer.start()
            self._reader = self._connect()
        except BaseException:
            self._writer.stop()
            self.owner.release()
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
        """Write transactions committed by the group-commit thread."""
        return self._writer.commits

    # -- plumbing ----------------------------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._writer.submit(fn)

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
        return await anyio.to_thread.run_sync(run, limiter=self._read_turns)

    # -- migrations --------------------------------------------------------------------

    async def upgrade(self) -> list[tuple[str, int]]:
        return await self._write(self._upgrade)

    def _upgrade(self, conn: sqlite3.Connection) -> list[tuple[str, int]]:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (namespace TEXT NOT NULL,"
            " version INTEGER NOT NULL, applied REAL NOT NULL, PRIMARY KEY (namespace, version))"
        )
        current = dict(
            conn.execute("SELECT namespace, max(version) FROM schema_migrations GROUP BY 1")
        )
        applied: list[tuple[str, int]] = []
        for namespace, steps in registered().items():
            for step in steps:
                if step.version <= current.get(namespace, 0):
                    continue
                for statement in split_statements(step.script(self.dialect, namespace)):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (namespace, step.version, self.now()),
                )
                applied.append((namespace, step.version))
        return applied

    async def migrations_applied(self) -> dict[str, int]:
        def read(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT namespace, max(version) FROM schema_migrations GROUP BY 1")
            return {str(ns): int(v) for ns, v in rows}

        return await self._read(read)

    # -- runs --------------------------------------------------------------------------

    async def create_run(
        self, run: NewRun, *, claim: bool = True, records: Sequence[Event] = ()
    ) -> Created:
        if records and not claim:
            raise ValueError("records need the claim of the run they start")

        def create(conn: sqlite3.Connection) -> Created:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run.run_id,)
            ).fetchone()
            if row is not None:
                existing = record_from_row(row)
                if existing.definition_hash != run.definition_hash:
                    raise RunExists(
                        f"run {run.run_id} already exists for {existing.saga}"
                        f" (definition {existing.definition_hash[:12]}), not this definition"
                    )
                return Created(existing, False, None)
            now = self.now()
            owner = self.owner.token if claim else None
            conn.execute(
                "INSERT INTO runs (run_id, saga, state, definition_hash, definition, inputs,"
                " plugin_versions, created, updated, owner, fence, last_seq, node)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
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
                ),
            )
            data = {"state": "queued", "saga": run.saga, "definition_hash": run.definition_hash}
            conn.execute(
                "INSERT INTO run_log VALUES (?, 1, ?, 'run_created', NULL, ?)",
                (run.run_id, now, _dumps(data)),
            )
            taken = Claim(run.run_id, owner, 1) if owner else None
            written = [Event(run.run_id, "run_created", None, data, now, 1)]
            if records and taken is not None:
                written += _append(conn, taken, records, None, now)
            record = record_from_row(
                conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run.run_id,)
                ).fetchone()
            )
            return Created(record, True, taken, written)

        return await self._write(create)

    async def get_run(self, run_id: str) -> RunRecord:
        def read(conn: sqlite3.Connection) -> RunRecord:
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
            found = row.fetchone()
            if found is None:
                raise RunNotFound(f"no run {run_id!r} in {self.path}")
            return record_from_row(found)

        return await self._read(read)

    async def list_runs(
        self,
        *,
        states: Collection[str] | None = None,
        limit: int = 1000,
        saga: str | None = None,
    ) -> list[RunRecord]:
        where: list[str] = []
        params: list[str | int] = []
        if states is not None:
            where.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(states)
        if saga is not None:
            where.append("saga = ?")
            params.append(saga)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created, run_id LIMIT ?"
        params.append(limit)

        def read(conn: sqlite3.Connection) -> list[RunRecord]:
            return [record_from_row(row) for row in conn.execute(sql, params)]

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
        return await self._read(lambda conn: summaries(conn.execute(sql, params).fetchall()))

    async def census(self) -> list[tuple[str, str, int, float]]:
        return await self._read(lambda conn: conn.execute(CENSUS_SQL).fetchall())

    async def read_log(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        def read(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                "SELECT seq, at, kind, action, data FROM run_log"
                " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, after_seq, -1 if limit is None else limit),
            )
            return [
                Event(run_id, kind, action, json.loads(data), at, seq)
                for seq, at, kind, action, data in rows
            ]

        return await self._read(read)

    async def checkpoints(self, run_id: str) -> dict[str, JSON]:
        return await self._read(_by_action("action_checkpoints", run_id))

    async def progress(self, run_id: str) -> dict[str, JSON]:
        return await self._read(_by_action("action_progress", run_id))

    # -- ownership ---------------------------------------------------------------------

    async def claim(self, run_id: str) -> Claim:
        token = self.owner.token

        def take(conn: sqlite3.Connection) -> Claim:
            row = conn.execute("SELECT owner FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(f"no run {run_id!r} in {self.path}")
            owner = row[0]
            if owner is not None and self.owner.alive(owner):
                raise RunBusy(run_id, None if owner == token else owner)
            fence = conn.execute(
                "UPDATE runs SET owner = ?, fence = fence + 1 WHERE run_id = ? RETURNING fence",
                (token, run_id),
            ).fetchone()[0]
            return Claim(run_id, token, int(fence))

        return await self._write(take)

    async def release(self, claim: Claim) -> None:
        def release(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE runs SET owner = NULL WHERE run_id = ? AND owner = ? AND fence = ?",
                (claim.run_id, claim.owner, claim.fence),
            )

        await self._write(release)

    async def orphans(self, states: Collection[str]) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                f"SELECT run_id, owner FROM runs WHERE state IN ({','.join('?' * len(states))})"
                " ORDER BY created, run_id",
                tuple(states),
            ).fetchall()
            return [
                run_id for run_id, owner in rows if owner is None or not self.owner.alive(owner)
            ]

        return await self._read(read)

    # -- writes under a claim ----------------------------------------------------------

    async def append(
        self,
        claim: Claim,
        records: Sequence[Event],
        *,
        progress: Mapping[str, JSON] | None = None,
    ) -> list[Event]:
        prepared = _Prepared(claim, records, progress, self.now())
        return prepared.numbered(await self._write(prepared.write))

    async def begin(self, claim: Claim) -> StoreTransaction:
        def begin() -> sqlite3.Connection:
            conn = self._idle.pop() if self._idle else self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
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
        return SqliteTransaction(self, conn, claim, self._one_writer.release)

    async def save_checkpoint(self, claim: Claim, action: str, data: JSON) -> None:
        text, now = _dumps(data), self.now()

        def save(conn: sqlite3.Connection) -> None:
            _check_claim(conn, claim)
            conn.execute(
                "INSERT OR REPLACE INTO action_checkpoints VALUES (?, ?, ?, ?)",
                (claim.run_id, action, now, text),
            )

        await self._write(save)

    async def pin_node(self, claim: Claim, node: str | None = None) -> None:
        pinned = node or this_node()

        def pin(conn: sqlite3.Connection) -> None:
            _check_claim(conn, claim)
            conn.execute("UPDATE runs SET node = ? WHERE run_id = ?", (pinned, claim.run_id))

        await self._write(pin)

    async def stats(self) -> dict[str, int]:
        def read(conn: sqlite3.Connection) -> dict[str, int]:
            row = conn.execute(STATS_SQL).fetchone()
            return {name: int(value) for name, value in zip(STATS_NAMES, row, strict=True)}

        return await self._read(read)

    # -- operator requests -------------------------------------------------------------

    async def request_cancel(self, run_id: str) -> None:
        def flag(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE runs SET cancel_requested = 1 WHERE run_id = ?", (run_id,)
            )
            if cursor.rowcount == 0:
                raise RunNotFound(f"no run {run_id!r} in {self.path}")

        await self._write(flag)

    async def cancel_requested(self, run_id: str) -> bool:
        def read(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,))
            found = row.fetchone()
            return bool(found and found[0])

        return await self._read(read)

    async def cancel_requests(self, run_ids: Collection[str]) -> set[str]:
        ids = list(run_ids)

        def read(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = conn.execute(
                    "SELECT run_id FROM runs WHERE cancel_requested = 1"
                    f" AND run_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update(row[0] for row in rows)
            return found

        return await self._read(read)

    # -- retention ---------------------------------------------------------------------

    async def prune(self, *, finished_before: float, page: int = 500) -> int:
        def delete_page(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs"
                " WHERE finished IS NOT NULL AND finished < ? ORDER BY finished LIMIT ?)",
                (finished_before, page),
            ).rowcount

        total = 0
        while True:
            deleted = await self._write(delete_page)
            total += deleted
            if deleted < page:
                return total


class SqliteTransaction(StoreTransaction):
    """An action's writes on their own connection, in `BEGIN IMMEDIATE` until the engine
    commits them with the completion record (or rolls them back)."""

    dialect = "sqlite"

    def __init__(
        self,
        store: SqliteStore,
        conn: sqlite3.Connection,
        claim: Claim,
        done: Callable[[], None],
    ) -> None:
        self._store = store
        self._conn: sqlite3.Connection | None = conn
        self._claim = claim
        self._lock = threading.Lock()
        self._done = done
        """Lets the next `begin` in: called once, when this transaction ends."""

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
        now = self._store.now()

        def commit(conn: sqlite3.Connection) -> list[Event]:
            try:
                numbered = _append(conn, self._claim, records, progress, now)
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
        if conn is None:
            return
        if conn.in_transaction or len(self._store._idle) >= 4:
            conn.close()
        else:
            self._store._idle.append(conn)
        self._done()


# -- row helpers -----------------------------------------------------------------------


def _check_claim(conn: sqlite3.Connection, claim: Claim) -> None:
    row = conn.execute(
        "SELECT 1 FROM runs WHERE run_id = ? AND owner = ? AND fence = ?",
        (claim.run_id, claim.owner, claim.fence),
    ).fetchone()
    if row is None:
        raise ClaimLost(claim.run_id)


def _append(
    conn: sqlite3.Connection,
    claim: Claim,
    records: Sequence[Event],
    progress: Mapping[str, JSON] | None,
    now: float,
) -> list[Event]:
    """Number and insert `records`, moving the run row on, if `claim` is current."""
    prepared = _Prepared(claim, records, progress, now)
    return prepared.numbered(prepared.write(conn))


class _Prepared:
    """An append's SQL parameters, built before the writer thread runs it: the thread is
    the bottleneck with many sagas in flight, so it only executes (JSON is encoded here)."""

    __slots__ = ("claim", "log_rows", "now", "progress_rows", "records", "run_params")

    def __init__(
        self,
        claim: Claim,
        records: Sequence[Event],
        progress: Mapping[str, JSON] | None,
        now: float,
    ) -> None:
        self.claim, self.records, self.now = claim, records, now
        state: RunState | None = None
        error = code = None
        for record in records:
            moved = run_state_of(record)
            if moved is not None:
                state, error, code = moved, record.data.get("error"), record.data.get("code")
        self.run_params = (
            len(records),
            now,
            state,
            state,
            error,
            state,
            code,
            now if state is RunState.RUNNING else None,
            state,
            now if state in FINISHED else None,
            state in RELEASING,
            claim.run_id,
            claim.owner,
            claim.fence,
        )
        # Rows without their seq (known only in the writer): (run_id, at, kind, action, data).
        self.log_rows = [
            (claim.run_id, r.at or now, r.kind, r.action, _dumps(dict(r.data))) for r in records
        ]
        self.progress_rows = (
            [(claim.run_id, action, now, _dumps(data)) for action, data in progress.items()]
            if progress
            else None
        )

    def write(self, conn: sqlite3.Connection) -> int:
        """Run it (on the writer's connection); returns the first record's seq."""
        row = conn.execute(_APPEND_SQL, self.run_params).fetchone()
        if row is None:
            raise ClaimLost(self.claim.run_id)
        first = int(row[0]) - len(self.log_rows) + 1
        conn.executemany(
            "INSERT INTO run_log VALUES (?, ?, ?, ?, ?, ?)",
            [(r[0], first + i, r[1], r[2], r[3], r[4]) for i, r in enumerate(self.log_rows)],
        )
        if self.progress_rows:
            conn.executemany(
                "INSERT OR REPLACE INTO action_progress VALUES (?, ?, ?, ?)", self.progress_rows
            )
        return first

    def numbered(self, first: int) -> list[Event]:
        """The records as written, with their seq."""
        run_id, now = self.claim.run_id, self.now
        return [
            Event(run_id, r.kind, r.action, r.data, r.at or now, first + i)
            for i, r in enumerate(self.records)
        ]


_APPEND_SQL = (
    "UPDATE runs SET last_seq = last_seq + ?, updated = ?,"
    " state = coalesce(?, state),"
    " error = CASE WHEN ? IS NULL THEN error ELSE ? END,"
    " error_code = CASE WHEN ? IS NULL THEN error_code ELSE ? END,"
    " started = coalesce(started, ?),"
    " finished = CASE WHEN ? IS NULL THEN finished ELSE ? END,"
    " owner = CASE WHEN ? THEN NULL ELSE owner END"
    " WHERE run_id = ? AND owner = ? AND fence = ? RETURNING last_seq"
)


def _by_action(table: str, run_id: str) -> Callable[[sqlite3.Connection], dict[str, JSON]]:
    def read(conn: sqlite3.Connection) -> dict[str, JSON]:
        rows = conn.execute(f"SELECT action, data FROM {table} WHERE run_id = ?", (run_id,))
        return {action: json.loads(data) for action, data in rows}

    return read


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
