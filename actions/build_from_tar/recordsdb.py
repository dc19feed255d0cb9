"""A plain transaction on the run store's database, for platform records read or written
outside a run (`sagactl app show|start`): the same `Transaction` protocol actions get.

SQLite: `BEGIN IMMEDIATE` with a busy timeout, as the store does. PostgreSQL: psycopg, `?`
placeholders translated.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import platformdirs
from sagactl.engine import InputError

BUSY_TIMEOUT = 60.0


def store_url(url: str | os.PathLike[str] | None = None) -> str:
    """`url`, else `$SAGACTL_DB`, else the default SQLite file (as the run store)."""
    if url is not None:
        return os.fspath(url)
    configured = os.environ.get("SAGACTL_DB")
    if configured:
        return configured
    return "sqlite://" + str(Path(platformdirs.user_state_dir("sagactl")) / "sagactl.db")


class _SqliteTransaction:
    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await anyio.to_thread.run_sync(self.connection.execute, sql, tuple(params))
        return int(cursor.rowcount)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        def run() -> tuple[Any, ...] | None:
            row = self.connection.execute(sql, tuple(params)).fetchone()
            return tuple(row) if row is not None else None

        return await anyio.to_thread.run_sync(run)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            return [tuple(r) for r in self.connection.execute(sql, tuple(params)).fetchall()]

        return await anyio.to_thread.run_sync(run)


class _PgTransaction:
    dialect = "postgresql"

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self.connection.execute(self._sql(sql), tuple(params))
        return int(cursor.rowcount)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        cursor = await self.connection.execute(self._sql(sql), tuple(params))
        row = await cursor.fetchone()
        return tuple(row) if row is not None else None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = await self.connection.execute(self._sql(sql), tuple(params))
        return [tuple(r) for r in await cursor.fetchall()]


def sqlite_path(url: str) -> Path:
    if url.startswith("sqlite://"):
        return Path(url.removeprefix("sqlite://"))
    return Path(url)


@asynccontextmanager
async def transaction(url: str | os.PathLike[str] | None = None) -> AsyncIterator[Any]:
    """One transaction on the store at `url`: committed when the block ends, rolled back
    when it raises."""
    text = store_url(url)
    if text.startswith(("postgresql://", "postgres://")):
        import psycopg

        try:
            pg = await psycopg.AsyncConnection.connect(text)
        except psycopg.OperationalError as exc:
            raise InputError(f"cannot connect to {text}: {exc}") from None
        async with pg, pg.transaction():
            yield _PgTransaction(pg)
        return
    if "://" in text and not text.startswith("sqlite://"):
        raise InputError(f"unknown database URL {text!r}: use sqlite:/// or postgresql://")
    path = sqlite_path(text)
    path.parent.mkdir(parents=True, exist_ok=True)

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        return conn

    connection = await anyio.to_thread.run_sync(connect)
    try:
        yield _SqliteTransaction(connection)
    except BaseException:
        await anyio.to_thread.run_sync(connection.execute, "ROLLBACK")
        raise
    else:
        await anyio.to_thread.run_sync(connection.execute, "COMMIT")
    finally:
        await anyio.to_thread.run_sync(connection.close)
