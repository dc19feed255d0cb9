"""Group commit: one thread owns the SQLite write connection and batches queued writes.

Writers queue a function of the connection and await it. The thread takes everything
queued, runs them all in one `BEGIN IMMEDIATE` transaction, commits once (one fsync for
the whole batch), and only then releases the waiters. A function that raises rolls back
only its own writes (the batch is then run again, each function in its own SAVEPOINT).
Many sagas in flight thus share commits, without any write being acknowledged before it
is durable.
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
from typing import Any, Generic, TypeVar

import anyio

from .base import StoreError

T = TypeVar("T")
_STOP = object()

Schedule = Callable[[Callable[[], None]], object]
"""Runs a callback on the waiter's event loop, from another thread, without blocking."""


def _trio_scheduler() -> Schedule:
    import trio

    schedule: Schedule = trio.lowlevel.current_trio_token().run_sync_soon
    return schedule


class _Done:
    """A request's "committed" signal: a bare future on asyncio (an `anyio.Event` costs an
    async-library lookup per request, which showed in profiles), an `anyio.Event` elsewhere."""

    __slots__ = ("_event", "_future")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._future: asyncio.Future[None] | None = None
        self._event: anyio.Event | None = None
        if loop is not None:
            self._future = loop.create_future()
        else:
            self._event = anyio.Event()

    def set(self) -> None:
        if self._future is not None:
            if not self._future.done():  # its waiter may have been cancelled
                self._future.set_result(None)
        else:
            assert self._event is not None
            self._event.set()

    async def wait(self) -> None:
        if self._future is not None:
            await self._future
        else:
            assert self._event is not None
            await self._event.wait()


@dataclass(slots=True)
class _Request(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    done: _Done
    schedule: Schedule
    result: Any = None
    error: BaseException | None = field(default=None)


class GroupCommitWriter:
    """The single writer of one SQLite database in this process."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, max_batch: int = 2000):
        self._connect = connect
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Request[Any]]] = {}
        self._thread: threading.Thread | None = None
        self.commits = 0
        """Commits so far (for tests and benchmarks: how much batching happened)."""

    def start(self) -> None:
        ready: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="sagactl-sqlite-writer", daemon=True
        )
        self._thread.start()
        error = ready.get()
        if error is not None:
            raise StoreError(f"cannot open the database for writing: {error}") from error

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the next batch; returns once that batch is committed.

        The request is queued before the first suspension, so calls made in order from
        one task commit in that order.
        """
        if self._thread is None:
            raise StoreError("the store is closed")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio
            request: _Request[T] = _Request(fn, _Done(None), _trio_scheduler())
            self._queue.put(request)
        else:
            request = _Request(fn, _Done(loop), loop.call_soon_threadsafe)
            # Hand the writer everything queued in this loop tick at once: one wake-up of
            # the writer thread (and one GIL hand-off) per tick, not one per request, and
            # larger batches when many sagas are in flight. Order within the tick is kept.
            pending = self._pending.get(loop)
            if pending is None:
                pending = self._pending[loop] = []
                loop.call_soon(self._hand_over, loop)
            pending.append(request)
        await request.done.wait()
        if request.error is not None:
            raise request.error
        result: T = request.result
        return result

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop)
        if self._thread is None:
            _fail_closed(batch)
        else:
            self._queue.put(batch)

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

    def _commit(self, conn: sqlite3.Connection, batch: list[_Request[Any]]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for request in batch:
                request.error = StoreError(f"cannot begin a write transaction: {exc}")
            return
        try:
            if len(batch) == 1:
                # Alone in its batch (one saga at a time): the transaction is its savepoint.
                only = batch[0]
                try:
                    only.result = only.fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK")
                    only.error = exc
                    return
                conn.execute("COMMIT")
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
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
            else:
                conn.execute("COMMIT")
                self.commits += 1
                for request, result in zip(batch, results, strict=True):
                    request.result = result
                return
            for request in batch:
                conn.execute("SAVEPOINT request")
                try:
                    request.result = request.fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO request")
                    request.error = exc
                conn.execute("RELEASE request")
            conn.execute("COMMIT")
            self.commits += 1
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
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
        by_loop: dict[int, tuple[Schedule, list[_Done]]] = {}
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


def _set_all(events: list[_Done]) -> None:
    for event in events:
        event.set()
