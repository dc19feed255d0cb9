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


async def test_pipelined_appends_share_one_commit_and_a_stale_fence_fails_alone() -> None:
    """Appends of several runs go in one pipelined batch: each checks its own fence inside
    the batch, so the one under a stale claim gets ClaimLost and the others commit."""
    from sagactl.engine.events import Event, EventKind
    from sagactl.engine.store import ClaimLost, NewRun
    from sagactl.engine.store.postgres import PostgresStore

    def record() -> Event:
        return Event("", EventKind.ACTION_STARTED, "a", {})

    with pg_schema("gc") as url:
        async with PostgresStore(url, lease=30) as store:
            claims = {}
            for run_id in ("r1", "r2", "r3"):
                new = NewRun(run_id, "demo", "h", {"format": 1, "name": "demo", "actions": {}}, {})
                created = await store.create_run(new)
                assert created.claim is not None
                claims[run_id] = created.claim
            stale = claims["r2"]
            await store.release(stale)
            await store.claim("r2")  # a higher fence: `stale` may write nothing more
            before = store.commits
            outcomes = await asyncio.gather(
                store._writer.submit(_pause),  # leads; the appends queue into one batch
                *(store.append(claims[r], [record()]) for r in ("r1", "r2", "r3")),
                return_exceptions=True,
            )
            assert isinstance(outcomes[2], ClaimLost)
            first, third = outcomes[1], outcomes[3]
            assert isinstance(first, list) and isinstance(third, list)
            assert [e.seq for e in first] == [2] == [e.seq for e in third]
            assert store.commits == before + 2  # the pause's batch and the appends' one
            assert [len(await store.read_log(r)) for r in ("r1", "r2", "r3")] == [2, 1, 2]


def _send_insert(value: int) -> Callable[[Any], Awaitable[Callable[[], Awaitable[int]]]]:
    async def send(conn: Any) -> Callable[[], Awaitable[int]]:
        cursor = await conn.execute("INSERT INTO t VALUES (%s) RETURNING v", (value,))

        async def read() -> int:
            found = await cursor.fetchone()
            return int(found[0])

        return read

    return send


async def test_a_pipelined_batch_failing_in_sql_runs_again_isolated() -> None:
    """A pipelined write failing in SQL aborts the batch; it runs again with each write in
    its savepoint, so only that writer gets the error."""
    import psycopg
    from sagactl.engine.store.postgres_writer import GroupCommit, connect

    with pg_schema("gc") as url:
        writer = GroupCommit(lambda: connect(url))
        writer.open = True
        try:
            await writer.submit(_insert_table)  # the connection is in use: batches pipeline
            before = writer.commits
            outcomes = await asyncio.gather(
                writer.submit(_pause),
                writer.submit_pipelined(_send_insert(1)),
                writer.submit_pipelined(_send_insert(1)),  # the primary key refuses it
                writer.submit_pipelined(_send_insert(2)),
                return_exceptions=True,
            )
            assert outcomes[1] == 1 and outcomes[3] == 2
            assert isinstance(outcomes[2], psycopg.errors.UniqueViolation)
            assert writer.commits == before + 2
            assert await writer.submit(_values) == [1, 2]
        finally:
            if writer.connection is not None:
                await writer.connection.close()
