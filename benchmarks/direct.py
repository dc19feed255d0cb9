"""A saga's actions called directly, without the engine: the baseline for engine overhead.

`run_direct` calls each action's `execute` once, in topological order, with its references
resolved, and nothing else: no log, no intent records, no retries, no concurrency. Its
`DirectContext` is a stand-in for the engine's context (named so): progress goes to a
callback, checkpoints stay in memory, and `transaction()` commits platform records on a
plain SQLite connection (WAL, synchronous=FULL), as an application without sagactl would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog
from sagactl.engine import JSON, Action, CompiledSaga, Dependencies, Transaction
from sagactl.engine.references import Scope, resolve


class SqliteTransaction(Transaction):
    """`Transaction` on one sqlite3 connection; the caller commits or rolls back."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> str:
        return "sqlite"

    async def execute(self, sql: str, params: Sequence[JSON] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount

    async def fetchone(self, sql: str, params: Sequence[JSON] = ()) -> tuple[JSON, ...] | None:
        row: tuple[JSON, ...] | None = self._conn.execute(sql, tuple(params)).fetchone()
        return row

    async def fetchall(self, sql: str, params: Sequence[JSON] = ()) -> list[tuple[JSON, ...]]:
        return list(self._conn.execute(sql, tuple(params)).fetchall())


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class DirectContext:
    """What an action sees when called directly (a stand-in for the engine's context)."""

    def __init__(
        self,
        *,
        run_id: str,
        action: str,
        deps: Dependencies,
        conn: sqlite3.Connection,
        on_progress: Callable[[str, float | None, str, int | None], None] | None = None,
    ) -> None:
        self._run_id = run_id
        self._action = action
        self._deps = deps
        self._conn = conn
        self._on_progress = on_progress
        self._checkpoint: JSON | None = None
        self._log = structlog.get_logger("sagactl.bench").bind(run_id=run_id, action=action)

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def action(self) -> str:
        return self._action

    @property
    def attempt(self) -> int:
        return 1

    @property
    def idempotency_key(self) -> str:
        return f"{self._run_id}/{self._action}"

    @property
    def log(self) -> Any:
        return self._log

    @property
    def deps(self) -> Dependencies:
        return self._deps

    @property
    def last_checkpoint(self) -> JSON | None:
        return None

    def progress(
        self, fraction: float | None, message: str = "", *, bytes: int | None = None
    ) -> None:
        if self._on_progress is not None:
            self._on_progress(self._action, fraction, message, bytes)

    async def checkpoint(self, data: JSON) -> None:
        self._checkpoint = data

    async def pin_to_node(self) -> None:
        """Nothing to pin: without the engine there is no run for another worker to take."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield SqliteTransaction(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")


async def run_direct(
    saga: CompiledSaga,
    actions: Mapping[str, Action],
    inputs: Mapping[str, JSON],
    *,
    run_id: str,
    deps: Dependencies,
    conn: sqlite3.Connection,
    on_progress: Callable[[str, float | None, str, int | None], None] | None = None,
) -> dict[str, dict[str, JSON]]:
    """Every action's `execute`, one after another in topological order; their outputs.

    `actions` maps each `uses:` name to its action instance.
    """
    outputs: dict[str, dict[str, JSON]] = {}
    for name in saga.topological_order():
        spec = saga.actions[name]
        scope = Scope(run_id=run_id, saga=saga.name, inputs=inputs, outputs=outputs)
        ctx = DirectContext(
            run_id=run_id, action=name, deps=deps, conn=conn, on_progress=on_progress
        )
        outputs[name] = await actions[spec.uses].execute(ctx, resolve(dict(spec.with_), scope))
    return outputs
