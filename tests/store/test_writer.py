"""The SQLite group-commit writer: a failing request in a shared batch fails alone; with
`connect_on_loop`, batches commit on the loop while the lock is free, go to the thread
while it is taken, and commit in the order they were made either way."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from sagactl.engine.store.writer import TURN_AT_LEAST_EVERY, GroupCommitWriter, WriteConnection

pytestmark = pytest.mark.anyio


def _connector(path: Path, *, busy_timeout: float = 30.0) -> Callable[[], WriteConnection]:
    def connect() -> WriteConnection:
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout,
            factory=WriteConnection,
        )
        conn.execute("PRAGMA journal_mode = WAL")
        return conn

    return connect


@pytest.fixture(params=[False, True], ids=["thread", "on-loop"])
def writer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GroupCommitWriter]:
    path = tmp_path / "w.db"
    on_loop = _connector(path, busy_timeout=0) if request.param else None
    writer = GroupCommitWriter(_connector(path), connect_on_loop=on_loop)
    writer.start()
    yield writer
    writer.stop()


@pytest.fixture
def on_loop(tmp_path: Path) -> Iterator[GroupCommitWriter]:
    path = tmp_path / "w.db"
    writer = GroupCommitWriter(_connector(path), connect_on_loop=_connector(path, busy_timeout=0))
    writer.start()
    yield writer
    writer.stop()


def _insert(value: int, *, fail: bool = False) -> Callable[[sqlite3.Connection], int]:
    def fn(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        if fail:
            raise ValueError(f"request {value} failed")
        return value

    return fn


def _thread_of(conn: sqlite3.Connection) -> str:
    conn.execute("INSERT INTO t VALUES (0)")
    return threading.current_thread().name


async def _values(writer: GroupCommitWriter) -> list[int]:
    rows = await writer.submit(lambda c: c.execute("SELECT v FROM t ORDER BY rowid").fetchall())
    return [row[0] for row in rows]


class TestGroupCommitWriter:
    async def test_batch_without_failures_commits_once(self, writer: GroupCommitWriter) -> None:
        """Requests queued in one tick share one commit and all get their results."""
        await writer.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        before = writer.commits
        results = await asyncio.gather(*(writer.submit(_insert(i)) for i in range(5)))
        assert results == [0, 1, 2, 3, 4]
        assert writer.commits == before + 1
        assert sorted(await _values(writer)) == [0, 1, 2, 3, 4]

    async def test_failing_request_rolls_back_only_its_writes(
        self, writer: GroupCommitWriter
    ) -> None:
        """One request raising in a batch: its insert is undone, the others' are committed."""
        await writer.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        before = writer.commits
        outcomes = await asyncio.gather(
            writer.submit(_insert(1)),
            writer.submit(_insert(2, fail=True)),
            writer.submit(_insert(3)),
            return_exceptions=True,
        )
        assert outcomes[0] == 1 and outcomes[2] == 3
        assert isinstance(outcomes[1], ValueError)
        assert writer.commits == before + 1  # one shared batch, still one commit
        assert sorted(await _values(writer)) == [1, 3]

    async def test_a_lone_failing_request_leaves_nothing(self, writer: GroupCommitWriter) -> None:
        await writer.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        with pytest.raises(ValueError, match="request 7 failed"):
            await writer.submit(_insert(7, fail=True))
        assert await _values(writer) == []

    async def test_a_cancelled_caller_still_waits_for_its_commit(
        self, writer: GroupCommitWriter
    ) -> None:
        """Its caller is cancelled while the request waits for its batch: the call still
        returns its result once the batch is committed (`Store.appends_shielded`), and the
        cancellation comes at the caller's next checkpoint."""
        await writer.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        returned: list[int] = []
        with anyio.CancelScope() as scope:
            # Cancelled in the next tick, once the request waits (a queued callback also
            # keeps it from committing at once on the loop).
            asyncio.get_running_loop().call_soon(scope.cancel)
            returned.append(await writer.submit(_insert(1)))
            await anyio.sleep(5)
        assert scope.cancelled_caught
        assert returned == [1]
        assert await _values(writer) == [1]

    async def test_closed_writer_refuses(self, writer: GroupCommitWriter) -> None:
        writer.stop()
        with pytest.raises(Exception, match="the store is closed"):
            await writer.submit(lambda c: None)


class TestCommitsOnTheLoop:
    async def test_commits_on_the_loop_while_the_lock_is_free(
        self, on_loop: GroupCommitWriter
    ) -> None:
        await on_loop.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        assert await on_loop.submit(_thread_of) == threading.current_thread().name

    async def test_a_taken_lock_sends_the_batch_to_the_thread(
        self, on_loop: GroupCommitWriter, tmp_path: Path
    ) -> None:
        """Another connection holds the write lock: the loop does not wait for it (other
        tasks go on), the thread does, and the write lands once the lock is let go."""
        await on_loop.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(on_loop.submit(_thread_of))
        ticks = 0
        while ticks < 20:  # the loop keeps turning while the write waits for the lock
            await asyncio.sleep(0.005)
            ticks += 1
        assert not write.done()
        other.execute("COMMIT")
        other.close()
        assert await asyncio.wait_for(write, 30) == "sagactl-sqlite-writer"
        # Back on the loop once the thread's batch has landed.
        assert await on_loop.submit(_thread_of) == threading.current_thread().name

    async def test_batches_commit_in_order_across_the_thread_and_the_loop(
        self, on_loop: GroupCommitWriter, tmp_path: Path
    ) -> None:
        """A batch still on its way through the thread keeps later batches off the loop:
        they follow it through the thread, so commits keep the order they were made in."""
        await on_loop.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        first = asyncio.ensure_future(on_loop.submit(_insert(1)))
        await asyncio.sleep(0.05)  # handed to the thread, which waits for the lock
        other.execute("COMMIT")  # free now: a commit on the loop would overtake it
        other.close()
        second = asyncio.ensure_future(on_loop.submit(_insert(2)))
        assert await asyncio.wait_for(asyncio.gather(first, second), 30) == [1, 2]
        assert await _values(on_loop) == [1, 2]

    async def test_a_failing_request_on_the_loop_fails_alone(
        self, on_loop: GroupCommitWriter
    ) -> None:
        await on_loop.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        outcomes = await asyncio.gather(
            on_loop.submit(_insert(1)),
            on_loop.submit(_insert(2, fail=True)),
            return_exceptions=True,
        )
        assert outcomes[0] == 1 and isinstance(outcomes[1], ValueError)
        assert await _values(on_loop) == [1]

    async def test_a_lone_request_commits_without_a_loop_turn(
        self, on_loop: GroupCommitWriter
    ) -> None:
        """Nothing else queued on the loop: the request would be its batch alone, so it
        commits at once, and `submit` returns without suspending."""
        await on_loop.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        before = on_loop.commits
        loop = asyncio.get_running_loop()
        assert not loop._ready  # type: ignore[attr-defined]
        submit = on_loop.submit(_insert(1))
        with pytest.raises(StopIteration) as returned:
            submit.send(None)
        assert returned.value.value == 1
        assert on_loop.commits == before + 1
        lone = on_loop.submit(_insert(2, fail=True))
        with pytest.raises(ValueError, match="request 2 failed"):
            lone.send(None)
        assert await _values(on_loop) == [1]

    async def test_a_request_with_callbacks_queued_waits_for_the_tick_batch(
        self, on_loop: GroupCommitWriter
    ) -> None:
        """A callback queued before the hand-over may submit too (here a task's first
        step): the request waits for the tick's batch, which holds both, in order."""
        await on_loop.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        before = on_loop.commits
        second = asyncio.ensure_future(on_loop.submit(_insert(2)))
        assert await on_loop.submit(_insert(1)) == 1
        assert await second == 2
        assert on_loop.commits == before + 1
        assert await _values(on_loop) == [1, 2]

    async def test_commits_made_at_once_still_let_the_loop_turn(
        self, on_loop: GroupCommitWriter
    ) -> None:
        """A task committing one lone request after another never suspends on its own; after
        `TURN_AT_LEAST_EVERY` of that a commit takes the usual way, so the loop turns (its
        timers, signals and I/O are not held up by a long chain of quick actions)."""
        await on_loop.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        loop = asyncio.get_running_loop()
        turns: list[float] = []

        def tick() -> None:
            turns.append(loop.time())
            if len(turns) < 1000:
                loop.call_later(0.001, tick)

        start = loop.time()
        loop.call_later(0.001, tick)
        value = 0
        while loop.time() - start < 20 * TURN_AT_LEAST_EVERY:
            value += 1
            await on_loop.submit(_insert(value))
        times = [start, *turns]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert len(turns) >= 5, (value, turns)
        # A gap is at most the bound, one commit past it and the timer's own millisecond.
        assert max(gaps) < TURN_AT_LEAST_EVERY + 0.25, gaps


def test_the_write_path_keeps_one_cursor_and_leaves_others_alone(tmp_path: Path) -> None:
    """`run` reuses one cursor (no cursor made per statement); a cursor from `execute`
    is the caller's own, so the write path's statements do not reset it."""
    conn = _connector(tmp_path / "c.db")()
    try:
        assert conn.run("CREATE TABLE t (v INTEGER)") is conn.run("BEGIN IMMEDIATE")
        conn.run_many("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
        rows = conn.execute("SELECT v FROM t ORDER BY v")
        first = rows.fetchone()
        assert conn.run("INSERT INTO t VALUES (4)").rowcount == 1
        assert [first, *rows.fetchall()] == [(1,), (2,), (3,)]
        conn.run("COMMIT")
    finally:
        conn.close()
