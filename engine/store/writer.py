"""Group commit: one thread owns the SQLite write connection and batches queued writes.

Writers queue a function of the connection and await it. The thread takes everything
queued, runs them all in one `BEGIN IMMEDIATE` transaction, commits once (one fsync for
the whole batch), and only then releases the waiters. A function that raises rolls back
only its own writes (the batch is then run again, each function in its own SAVEPOINT).
Many sagas in flight thus share commits, without any write being acknowledged before it
is durable.

On the loop (`connect_on_loop`): a process whose event loop serves nothing but its sagas
(a CLI command) may commit each tick's batch on the loop itself, on a connection of its
own that never waits for the lock. Handing a commit to a thread and back costs about as
much CPU as the commit (two thread wake-ups and GIL hand-offs), and in a chain of actions
each step waits for it; on the loop the fsync simply blocks the loop, which nothing else
needs meanwhile. When the lock is taken (a transaction of an action's, another process)
or batches are still on their way through the thread, the batch goes to the thread as
always, so commits stay in order and the loop never waits for another writer. A request
that would be its tick's batch alone (nothing else queued to run first) commits at once,
without the loop turns to the hand-over and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from ..shield import shielded
from ..wake import Wake
from .base import StoreError

T = TypeVar("T")
_STOP = object()

TURN_AT_LEAST_EVERY = 0.01
"""Seconds: commits made at once on the loop (`_commit_alone`) never suspend, so after this
long of them a commit takes the usual way and lets the loop turn (signals, I/O, timers)."""

Schedule = Callable[[Callable[[], None]], object]
"""Runs a callback on the waiter's event loop, from another thread, without blocking."""


def _trio_scheduler() -> Schedule:
    import trio

    schedule: Schedule = trio.lowlevel.current_trio_token().run_sync_soon
    return schedule


class WriteConnection(sqlite3.Connection):
    """A connection keeping one cursor for the write path's own statements (`run`,
    `run_many`): `Connection.execute` makes and frees a cursor per call, ~1,400
    instructions, and a commit runs about five. Their results are read at once (a row
    count, one row at most): the next statement resets the cursor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cursor = self.cursor()
        self.run = cursor.execute
        self.run_many = cursor.executemany


class _Signal(Protocol):
    def set(self) -> None: ...


@dataclass(slots=True)
class _Request(Generic[T]):
    fn: Callable[[WriteConnection], T]
    done: _Signal
    schedule: Schedule
    result: Any = None
    error: BaseException | None = field(default=None)


class GroupCommitWriter:
    """The single writer of one SQLite database in this process."""

    def __init__(
        self,
        connect: Callable[[], WriteConnection],
        *,
        max_batch: int = 2000,
        connect_on_loop: Callable[[], WriteConnection] | None = None,
    ):
        """`connect_on_loop`: commit on the event loop, on a connection from it that fails
        at once when the lock is taken (busy timeout 0); see the module's docstring."""
        self._connect = connect
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Request[Any]]] = {}
        self._thread: threading.Thread | None = None
        self._connect_on_loop = connect_on_loop
        self._on_loop: WriteConnection | None = None
        self._home: asyncio.AbstractEventLoop | None = None
        """The one loop that commits on itself: the first to hand a batch over."""
        self._on_thread = 0
        """The home loop's batches handed to the thread and not yet landed back on it."""
        self._alone_since: float | None = None
        """When the first commit made at once since the loop last turned was made."""
        self.commits = 0
        """Commits so far (for tests and benchmarks: how much batching happened)."""

    def start(self) -> None:
        ready: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="sagactl-sqlite-writer", daemon=True
        )
        self._thread.start()
        error = ready.get()
        if error is None and self._connect_on_loop is not None:
            try:
                self._on_loop = self._connect_on_loop()
            except BaseException as exc:
                self.stop()
                error = exc
        if error is not None:
            raise StoreError(f"cannot open the database for writing: {error}") from error

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._on_loop is not None:
            self._on_loop.close()
            self._on_loop = None

    async def submit(self, fn: Callable[[WriteConnection], T]) -> T:
        """Run `fn(conn)` in the next batch; returns once that batch is committed, even
        if the caller is cancelled meanwhile (its cancellation comes after).

        The request is queued before the first suspension, so calls made in order from
        one task commit in that order.
        """
        if self._thread is None:
            raise StoreError("the store is closed")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio
            done = Wake(None)
            request: _Request[T] = _Request(fn, done, _trio_scheduler())
            self._queue.put(request)
            with shielded():
                await done.wait()
        else:
            # Hand the writer everything queued in this loop tick at once: one wake-up of
            # the writer thread (and one GIL hand-off) per tick, not one per request, and
            # larger batches when many sagas are in flight. Order within the tick is kept.
            pending = self._pending.get(loop)
            alone = self._commit_alone(loop, fn) if pending is None else None
            if alone is None:
                done = Wake(loop)
                request = _Request(fn, done, loop.call_soon_threadsafe)
                if pending is None:
                    pending = self._pending[loop] = []
                    loop.call_soon(self._hand_over, loop)
                pending.append(request)
                # Shielded: a request handed over is committed; its caller learns the
                # outcome (`Store.appends_shielded`). One committed at once never waits.
                with shielded():
                    await done.wait()
            else:
                request = alone
        if request.error is not None:
            raise request.error
        result: T = request.result
        return result

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        self._alone_since = None  # (a callback: the loop has turned)
        batch = self._pending.pop(loop)
        if self._thread is None:
            _fail_closed(batch)
            return
        if self._on_loop is not None and self._at_home(loop):
            if not self._on_thread and self._commit_on_loop(self._on_loop, batch):
                return
            # Its landing tells this loop when commits on the loop may go on (in order).
            self._on_thread += 1
            batch.append(_Request(_nothing, _Landed(self), loop.call_soon_threadsafe))
        self._queue.put(batch)

    def _at_home(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether `loop` is the one that commits on itself (the first to commit)."""
        if self._home is None:
            self._home = loop
        return loop is self._home

    def _commit_alone(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[[WriteConnection], T]
    ) -> _Request[T] | None:
        """`fn` committed on the loop now, when its batch would hold it alone: none begun
        in this tick, and no callback queued to run before the hand-over (one might submit;
        what I/O and timers make ready comes after it). Saves the two loop turns to the
        hand-over and back. None: not committed (the lock is taken, batches are on the
        thread, the loop has not turned for `TURN_AT_LEAST_EVERY`, or the loop keeps no
        `_ready` queue, asyncio's own private one: uvloop), so it goes the usual way."""
        conn = self._on_loop
        if conn is None or self._on_thread or getattr(loop, "_ready", True):
            return None
        if not self._at_home(loop):
            return None
        now = loop.time()
        if self._alone_since is None:
            self._alone_since = now
        elif now - self._alone_since > TURN_AT_LEAST_EVERY:
            return None
        if not _begun_at_once(conn):
            return None
        request: _Request[T] = _Request(fn, _NOBODY, loop.call_soon_threadsafe)
        self._commit_begun(conn, [request])
        return request

    def _commit_on_loop(self, conn: WriteConnection, batch: list[_Request[Any]]) -> bool:
        """Commit `batch` here and wake its waiters; False (nothing done) when the write
        lock is taken."""
        if not _begun_at_once(conn):
            return False
        self._commit_begun(conn, batch)
        for request in batch:
            request.done.set()
        return True

    # -- the writer thread -------------------------------------------------------------

    def _run(self, ready: queue.SimpleQueue[BaseException | None]) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            ready.put(exc)
            return
        ready.put(None)
        try:
            stopping = False
            while not stopping:
                batch: list[_Request[Any]] = []
                item = self._queue.get()
                while True:
                    if item is _STOP:
                        stopping = True
                    elif isinstance(item, list):
                        batch.extend(item)
                    else:
                        batch.append(item)
                    # This thread alone takes from the queue: no `queue.Empty` raised per batch.
                    if len(batch) >= self._max_batch or self._queue.empty():
                        break
                    item = self._queue.get_nowait()
                if batch:
                    self._commit(conn, batch)
                    self._wake(batch)
        finally:
            conn.close()
            # Anything handed over after the stop is refused, not left waiting forever.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    _fail_closed(item if isinstance(item, list) else [item])

    def _commit(self, conn: WriteConnection, batch: list[_Request[Any]]) -> None:
        try:
            conn.run("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for request in batch:
                request.error = StoreError(f"cannot begin a write transaction: {exc}")
            return
        self._commit_begun(conn, batch)

    def _commit_begun(self, conn: WriteConnection, batch: list[_Request[Any]]) -> None:
        """Run `batch` in the transaction begun on `conn` and commit it; a request that
        raises gets its error and rolls back only its own writes."""
        try:
            if len(batch) == 1:
                # Alone in its batch (one saga at a time): the transaction is its savepoint.
                only = batch[0]
                try:
                    only.result = only.fn(conn)
                except Exception as exc:
                    conn.run("ROLLBACK")
                    only.error = exc
                    return
                conn.run("COMMIT")
                self.commits += 1
                return
            # Optimistically without savepoints (two statements fewer per request): when
            # every request succeeds, which is the rule, the outcome is the same. When one
            # fails, the whole transaction is rolled back and the batch is run again below,
            # each request in its own savepoint; requests are functions of the database
            # alone, so running one again after a rollback is as if it ran once.
            try:
                results = [request.fn(conn) for request in batch]
            except Exception:
                conn.run("ROLLBACK")
                conn.run("BEGIN IMMEDIATE")
            else:
                conn.run("COMMIT")
                self.commits += 1
                for request, result in zip(batch, results, strict=True):
                    request.result = result
                return
            for request in batch:
                conn.run("SAVEPOINT request")
                try:
                    request.result = request.fn(conn)
                except Exception as exc:
                    conn.run("ROLLBACK TO request")
                    request.error = exc
                conn.run("RELEASE request")
            conn.run("COMMIT")
            self.commits += 1
        except BaseException as exc:
            if conn.in_transaction:
                conn.run("ROLLBACK")
            for request in batch:
                request.result = None
                request.error = StoreError(f"commit failed: {exc}")

    @staticmethod
    def _wake(batch: list[_Request[Any]]) -> None:
        if len(batch) == 1:  # one saga at a time: its one request
            with contextlib.suppress(RuntimeError):
                batch[0].schedule(batch[0].done.set)
            return
        # One callback per event loop, not one per waiter: 500 waiters, one wake-up.
        by_loop: dict[int, tuple[Schedule, list[_Signal]]] = {}
        for request in batch:
            key = id(getattr(request.schedule, "__self__", request.schedule))
            by_loop.setdefault(key, (request.schedule, []))[1].append(request.done)
        for schedule, events in by_loop.values():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                schedule(functools.partial(_set_all, events))


def _fail_closed(batch: list[_Request[Any]]) -> None:
    for request in batch:
        request.error = StoreError("the store is closed")
    GroupCommitWriter._wake(batch)


def _set_all(events: list[_Signal]) -> None:
    for event in events:
        event.set()


def _begun_at_once(conn: WriteConnection) -> bool:
    """A write transaction begun on the loop's connection, which never waits for the lock:
    False when another connection holds it (the thread waits for it instead)."""
    try:
        conn.run("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:  # busy
        return False
    return True


def _nothing(conn: sqlite3.Connection) -> None:
    return None


class _Nobody:
    """The signal of a request committed while its submitter runs: nobody waits for it."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NOBODY = _Nobody()


class _Landed:
    """The last request of a batch the home loop hands the thread: its waiters are woken
    on the loop before it, so once it is set, that batch has committed and landed."""

    __slots__ = ("_writer",)

    def __init__(self, writer: GroupCommitWriter) -> None:
        self._writer = writer

    def set(self) -> None:
        self._writer._on_thread -= 1
