"""PostgreSQL group commit: writes submitted without a savepoint (appends) share the
batch's transaction; one failing in SQL sends the batch round again, each write isolated,
so only the failing writer gets the error (real server)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .conftest import pg_schema

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _insert(value: int) -> Callable[[Any], Awaitable[int]]:
    async def fn(conn: Any) -> int:
        await conn.execute("INSERT INTO t VALUES (%s)", (value,))
        return value

    return fn


async def test_unisolated_writes_fall_back_to_savepoints_on_an_sql_error() -> None:
    import psycopg
    from sagactl.engine.store.postgres_writer import GroupCommit, connect

    with pg_schema("gc") as url:
        writer = GroupCommit(lambda: connect(url))
        writer.open = True
        try:
            await writer.submit(_insert_table)
            before = writer.commits
            outcomes = await asyncio.gather(
                writer.submit(_pause),  # leads a batch of its own; the rest queue behind it
                writer.submit(_insert(1), isolated=False),
                writer.submit(_insert(1), isolated=False),  # the primary key refuses it
                writer.submit(_insert(2)),
                writer.submit(_insert(3), isolated=False),
                return_exceptions=True,
            )
            assert outcomes[1] == 1 and outcomes[3] == 2 and outcomes[4] == 3
            assert isinstance(outcomes[2], psycopg.errors.UniqueViolation)
            # The pause's batch and the second one; its failed first round was rolled back.
            assert writer.commits == before + 2
            stored = await writer.submit(_values)
            assert stored == [1, 2, 3]
        finally:
            if writer.connection is not None:
                await writer.connection.close()


async def _pause(conn: Any) -> None:
    await conn.execute("SELECT pg_sleep(0.3)")


async def _insert_table(conn: Any) -> None:
    await conn.execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")


async def _values(conn: Any) -> list[int]:
    cursor = await conn.execute("SELECT v FROM t ORDER BY v")
    return [r[0] for r in await cursor.fetchall()]
