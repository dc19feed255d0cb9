"""A store that dies at its Nth log write, as a process would on a power cut.

`SimulatedCrash` is a BaseException, so nothing in the engine catches it; after the crash
every further call fails too, and the caller closes the inner store (dropping its owner
lock, as the kernel does for a dead process) before resuming with a fresh store. A log
write is anything that makes the run's state durable: creating the run, appending
records, saving a checkpoint, committing an action's transaction, pinning the run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import ClassVar

from ..action import JSON, Transaction
from ..events import Event
from ..store import Claim, Created, NewRun, RunRecord, Store, StoreTransaction
from ..store.base import Turn


class SimulatedCrash(BaseException):
    """The process died here."""


class CrashingStore(Store):
    """Wraps `inner`; raises `SimulatedCrash` at log write number `crash_at` (1-based) and
    at every call after it. With `crash_at=None` it never crashes and only counts writes."""

    dialect: ClassVar[str] = "sqlite"

    def __init__(self, inner: Store, crash_at: int | None) -> None:
        self.inner = inner
        self.url = inner.url
        self.heartbeat_interval = inner.heartbeat_interval
        self.crash_at = crash_at
        self.writes = 0
        """Log writes attempted so far (the crashing one included)."""
        self.crashed = False

    def _write(self) -> None:
        if self.crashed:
            raise SimulatedCrash("already dead")
        self.writes += 1
        if self.crash_at is not None and self.writes >= self.crash_at:
            self.crashed = True
            raise SimulatedCrash(f"crash at write {self.writes}")

    def _alive(self) -> None:
        if self.crashed:
            raise SimulatedCrash("already dead")

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def upgrade(self) -> list[tuple[str, int]]:
        return await self.inner.upgrade()

    async def migrations_applied(self) -> dict[str, int]:
        return await self.inner.migrations_applied()

    async def create_run(
        self, run: NewRun, *, claim: bool = True, records: Sequence[Event] = ()
    ) -> Created:
        self._write()
        return await self.inner.create_run(run, claim=claim, records=records)

    async def get_run(self, run_id: str) -> RunRecord:
        self._alive()
        return await self.inner.get_run(run_id)

    async def list_runs(
        self,
        *,
        states: Collection[str] | None = None,
        limit: int = 1000,
        saga: str | None = None,
        unchanged_since: float | None = None,
        parent: str | None = None,
    ) -> list[RunRecord]:
        return await self.inner.list_runs(
            states=states, limit=limit, saga=saga, unchanged_since=unchanged_since, parent=parent
        )

    async def read_log(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        self._alive()
        return await self.inner.read_log(run_id, after_seq=after_seq, limit=limit)

    async def checkpoints(self, run_id: str) -> dict[str, JSON]:
        return await self.inner.checkpoints(run_id)

    async def progress(self, run_id: str) -> dict[str, JSON]:
        return await self.inner.progress(run_id)

    async def claim(self, run_id: str) -> Claim:
        self._alive()
        return await self.inner.claim(run_id)

    async def release(self, claim: Claim) -> None:
        self._alive()
        await self.inner.release(claim)

    async def orphans(self, states: Collection[str]) -> list[str]:
        return await self.inner.orphans(states)

    async def append(
        self,
        claim: Claim,
        records: Sequence[Event],
        *,
        progress: Mapping[str, JSON] | None = None,
        numbered: bool = True,
    ) -> list[Event]:
        self._write()
        return await self.inner.append(claim, records, progress=progress, numbered=numbered)

    async def begin(self, claim: Claim) -> StoreTransaction:
        self._alive()
        return _CrashingTransaction(self, await self.inner.begin(claim))

    async def save_checkpoint(self, claim: Claim, action: str, data: JSON) -> None:
        self._write()
        await self.inner.save_checkpoint(claim, action, data)

    async def pin_node(self, claim: Claim, node: str | None = None) -> None:
        self._write()
        await self.inner.pin_node(claim, node)

    async def heartbeat(self) -> set[str]:
        self._alive()
        return await self.inner.heartbeat()

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self.inner.transaction()  # writes outside a run are no part of the log

    async def request_cancel(self, run_id: str) -> None:
        await self.inner.request_cancel(run_id)

    async def cancel_requested(self, run_id: str) -> bool:
        return await self.inner.cancel_requested(run_id)

    async def prune(
        self,
        *,
        finished_before: float | None = None,
        default_retention: float | None = None,
        page: int = 500,
        keep: Sequence[str] = (),
    ) -> int:
        return await self.inner.prune(
            finished_before=finished_before,
            default_retention=default_retention,
            page=page,
            keep=keep,
        )

    async def tombstone(self, run_id: str) -> float | None:
        return await self.inner.tombstone(run_id)

    # Parked runs: reads, and writes outside the run's log (a signal is the sender's).

    async def turn(self, run_id: str) -> Turn | None:
        self._alive()
        return await self.inner.turn(run_id)

    async def send_signal(self, run_id: str, name: str, data: JSON) -> bool:
        return await self.inner.send_signal(run_id, name, data)

    async def pending_signals(self, run_id: str) -> set[str]:
        return await self.inner.pending_signals(run_id)

    async def wake(self, run_id: str) -> bool:
        return await self.inner.wake(run_id)

    async def due(self) -> list[str]:
        return await self.inner.due()


class _CrashingTransaction(StoreTransaction):
    def __init__(self, store: CrashingStore, inner: StoreTransaction) -> None:
        self.store = store
        self.inner = inner

    @property
    def dialect(self) -> str:
        return self.inner.dialect

    async def execute(self, sql: str, params: Sequence[JSON] = ()) -> int:
        return await self.inner.execute(sql, params)

    async def fetchone(self, sql: str, params: Sequence[JSON] = ()) -> tuple[JSON, ...] | None:
        return await self.inner.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Sequence[JSON] = ()) -> list[tuple[JSON, ...]]:
        return await self.inner.fetchall(sql, params)

    async def commit(
        self, records: Sequence[Event], *, progress: Mapping[str, JSON] | None = None
    ) -> list[Event]:
        try:
            self.store._write()
        except SimulatedCrash:
            await self.inner.rollback()  # the dead process's transaction never commits
            raise
        return await self.inner.commit(records, progress=progress)

    async def rollback(self) -> None:
        await self.inner.rollback()
