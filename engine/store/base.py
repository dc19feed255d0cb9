"""The Store interface: the durable log of runs, run ownership (claims) and platform tables
(its records and errors: `records.py`).

Every backend (SQLite, PostgreSQL) implements `Store`; the scheduler only ever talks to
this interface. Ownership of a run is an abstract *claim*: SQLite ties it to a live process
on this host (an OS lock), PostgreSQL to a lease with a fencing number. Every write of a run
goes through its claim, and a write under a claim that was lost raises `ClaimLost`, so a
process that lost a run can write nothing more.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import ClassVar

from ..action import JSON, Transaction
from ..events import Event
from ..states import RELEASING as RELEASING
from .pages import RunSummary
from .records import NODE_ENV as NODE_ENV
from .records import Claim as Claim
from .records import ClaimLost as ClaimLost
from .records import Created as Created
from .records import Loaded as Loaded
from .records import NewRun as NewRun
from .records import ParentLink as ParentLink
from .records import RunBusy as RunBusy
from .records import RunExists as RunExists
from .records import RunRecord as RunRecord
from .records import StoreError as StoreError
from .records import StoreUnusable as StoreUnusable
from .records import Turn as Turn
from .records import check_same_request as check_same_request
from .records import this_node as this_node


class StoreTransaction(Transaction):
    """`ctx.transaction()` on the store side: an open write transaction that the engine
    commits together with the action's completion records, or rolls back."""

    @abstractmethod
    async def commit(
        self, records: Sequence[Event], *, progress: Mapping[str, JSON] | None = None
    ) -> list[Event]:
        """Append `records` (as `Store.append`) and commit everything in one transaction."""

    @abstractmethod
    async def rollback(self) -> None:
        """Drop every write; safe to call twice or after `commit`."""


class Store(ABC):
    """A durable log of runs. Backends: `SqliteStore`, `PostgresStore` (see `open_store`).

    Records are `Event`s: `append` assigns each its `seq` (1, 2, ... per run) and keeps the
    run row's `state`, `error` and `finished` in step with the run-level records, so that
    `list_runs` can filter without folding every log.
    """

    dialect: ClassVar[str]
    url: str

    appends_shielded: ClassVar[bool] = False
    """`append` finishes what it began even if its caller is cancelled meanwhile (it
    shields its own waits), so a caller that must not lose its records needs no cancel
    scope of its own around it; False: the caller shields it."""

    # -- lifecycle ---------------------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations (core and registered)."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect. Claims still held are left as they are: the owner is gone, so any
        other process may take them over (exactly as after a crash)."""

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def upgrade(self) -> list[tuple[str, int]]:
        """Apply pending migrations; returns the (namespace, version) pairs applied."""

    @abstractmethod
    async def migrations_applied(self) -> dict[str, int]:
        """Namespace -> highest applied version."""

    # -- runs --------------------------------------------------------------------------

    @abstractmethod
    async def create_run(
        self, run: NewRun, *, claim: bool = True, records: Sequence[Event] = ()
    ) -> Created:
        """Create the run with its `run_created` record, idempotent on `run_id`.

        A run that exists is returned unchanged (`created=False`, no claim, nothing
        written); a different definition hash under the same id raises `RunExists`. With
        `claim`, a new run is owned by the caller from its first instant, so no `resume
        --all` can take it, and `records` (its first steps) are appended in the same
        commit, as `append` would.
        """

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord:
        """The run, or `RunNotFound`."""

    async def load(self, run_id: str) -> Loaded:
        """The run, its log, its checkpoints and its pause flag (in one round trip on a
        server), or `RunNotFound`."""
        record = await self.get_run(run_id)
        return Loaded(
            record,
            await self.read_log(run_id),
            await self.checkpoints(run_id),
            bool(await self.pause_requests([run_id])),
        )

    @abstractmethod
    async def list_runs(
        self,
        *,
        states: Collection[str] | None = None,
        limit: int = 1000,
        saga: str | None = None,
        unchanged_since: float | None = None,
        parent: str | None = None,
    ) -> list[RunRecord]:
        """Runs oldest first (by creation), optionally only those in `states`, of `saga`,
        whose last record is older than `unchanged_since` (e.g. stuck for an hour), or
        started as child sagas by the run `parent`."""

    async def page_runs(
        self,
        *,
        states: Collection[str] | None = None,
        saga: str | None = None,
        q: str | None = None,
        before: str | None = None,
        limit: int = 50,
        parent: str | None = None,
        created_before: float | None = None,
    ) -> list[RunSummary]:
        """Runs newest first, `limit` of them, below the cursor `before` (the `cursor` of
        the last run of the previous page): one index range per page, however deep.
        `q` matches a run id prefix, a saga, or an input's value; `created_before` (unix
        time) keeps only older runs. InputError: bad cursor."""
        raise NotImplementedError(f"{type(self).__name__} cannot page runs")

    async def census(self) -> list[tuple[str, str, int, float]]:
        """(saga, state, runs, oldest creation time) for every saga and state present."""
        raise NotImplementedError(f"{type(self).__name__} keeps no census")

    async def stuck_runs(self) -> list[tuple[str, float]]:
        """(saga, when it got stuck) of every stuck run."""
        raise NotImplementedError(f"{type(self).__name__} cannot list stuck runs")

    @abstractmethod
    async def read_log(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """The run's records with `seq > after_seq`, oldest first."""

    @abstractmethod
    async def checkpoints(self, run_id: str) -> dict[str, JSON]:
        """Action -> the data of its last `save_checkpoint`."""

    @abstractmethod
    async def progress(self, run_id: str) -> dict[str, JSON]:
        """Action -> its last saved progress."""

    # -- ownership ---------------------------------------------------------------------

    @abstractmethod
    async def claim(self, run_id: str) -> Claim:
        """Take the run: at once when nobody holds it or its owner is dead; `RunBusy` when a
        live owner holds it (this store's own open claims included)."""

    @abstractmethod
    async def release(self, claim: Claim) -> None:
        """Give the run up (no-op when the claim was already lost)."""

    @abstractmethod
    async def orphans(self, states: Collection[str]) -> list[str]:
        """Runs in `states` that no live owner holds, oldest first: what `resume --all` takes.
        Child sagas' runs are left out: their parents drive them."""

    # -- writes under a claim ----------------------------------------------------------

    @abstractmethod
    async def append(
        self,
        claim: Claim,
        records: Sequence[Event],
        *,
        progress: Mapping[str, JSON] | None = None,
        numbered: bool = True,
    ) -> list[Event]:
        """Durably append `records` (their `seq` is ignored) and return them numbered
        (`numbered=False`: an empty list, for a caller with no use for them; making them
        costs over 10 k instructions a record on CPython 3.11).

        Returns only after the commit that contains them; concurrent appends may share one
        commit (group commit). `progress` (action -> last progress) is saved in the same
        commit. Raises `ClaimLost` when `claim` is not current. A record moving the run to
        a state in `RELEASING` (finished, or stuck) also releases the claim in that commit.
        """

    @abstractmethod
    async def begin(self, claim: Claim) -> StoreTransaction:
        """Open a write transaction for an action's own writes (`ctx.transaction()`)."""

    # -- outside a run -----------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """One transaction outside any run, for the records a package keeps beside the log
        (`sagactl app show`): committed when the block ends, rolled back when it raises.

        The same connection settings and `?` placeholders as `ctx.transaction()`; the
        tables are there, since opening the store applied every registered migration.
        """
        return self._outside_run()

    @asynccontextmanager
    async def _outside_run(self) -> AsyncIterator[Transaction]:
        tx = await self._begin_unclaimed()
        try:
            yield tx
        except BaseException:
            import anyio  # not at import: the read-only commands run no event loop

            with anyio.CancelScope(shield=True):
                await tx.rollback()
            raise
        await tx.commit(())

    async def _begin_unclaimed(self) -> StoreTransaction:
        """A transaction under no claim: its `commit` takes no records."""
        raise NotImplementedError(f"{type(self).__name__} has no transactions outside a run")

    @abstractmethod
    async def save_checkpoint(self, claim: Claim, action: str, data: JSON) -> None:
        """Durably replace the action's checkpoint."""

    # -- operator requests -------------------------------------------------------------

    @abstractmethod
    async def request_cancel(self, run_id: str) -> None:
        """Flag the run for cancellation; its owner notices (`cancel_requested`)."""

    @abstractmethod
    async def cancel_requested(self, run_id: str) -> bool: ...

    async def cancel_requests(self, run_ids: Collection[str]) -> set[str]:
        """Which of `run_ids` were flagged (one query on backends that can)."""
        return {run_id for run_id in run_ids if await self.cancel_requested(run_id)}

    # -- parked runs (`sagactl.engine.parking`) ----------------------------------------

    async def turn(self, run_id: str) -> Turn | None:
        """Where the run stands on its concurrency key (None: it has none)."""
        raise NotImplementedError(f"{type(self).__name__} has no concurrency keys")

    async def send_signal(self, run_id: str, name: str, data: JSON) -> bool:
        """Keep the signal until the run's `wait.signal` consumes it; False when a signal
        of that name was sent to the run before (nothing is written)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no signals")

    async def pending_signals(self, run_id: str) -> set[str]:
        """Names of the signals sent to the run and not consumed yet."""
        raise NotImplementedError(f"{type(self).__name__} keeps no signals")

    async def wake(self, run_id: str) -> bool:
        """Make a `waiting` run due now. True when a worker takes it from here (PostgreSQL);
        False when the caller must drive it (SQLite: no workers)."""
        raise NotImplementedError(f"{type(self).__name__} cannot wake runs")

    async def due(self) -> list[str]:
        """`waiting` runs a signal woke or whose timer ran out, oldest timer first."""
        raise NotImplementedError(f"{type(self).__name__} cannot wake runs")

    async def request_pause(self, run_id: str, paused: bool = True) -> None:
        """Flag the run to pause (or clear the flag); its owner notices (`pause_requests`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot pause runs")

    async def pause_requests(self, run_ids: Collection[str]) -> set[str]:
        """Which of `run_ids` are flagged to pause (none, on a store that cannot pause)."""
        return set()

    # -- retention ---------------------------------------------------------------------

    @abstractmethod
    async def prune(
        self,
        *,
        finished_before: float | None = None,
        default_retention: float | None = None,
        page: int = 500,
        keep: Sequence[str] = (),
    ) -> int:
        """Delete finished runs (and their logs), `page` runs per transaction, each leaving
        a tombstone (`tombstone`); returns how many were deleted.

        With `finished_before`: every run finished before that time. Without: every run
        finished longer ago than its own retention, else `default_retention` seconds (None:
        such runs are kept). Runs listed by any of the `keep` queries (SQL selecting a
        `run_id` column) are never deleted."""

    async def tombstone(self, run_id: str) -> float | None:
        """When the run `run_id` was pruned; None if it never was."""
        return None

    # -- leases and ops (defaults for backends whose claims are not leases) ------------

    heartbeat_interval: float | None = None
    """How often the engine must call `heartbeat` (None: claims do not expire)."""

    async def heartbeat(self) -> set[str]:
        """Renew the leases of every run this store holds; returns the runs found lost."""
        return set()

    async def pin_node(self, claim: Claim, node: str | None = None) -> None:
        """Pin the run to `node` (default: this machine's, `this_node()`): from now on only
        a worker on that node claims it."""
        raise NotImplementedError(f"{type(self).__name__} cannot pin runs to a node")

    async def stats(self) -> dict[str, int]:
        """Counters: started, succeeded, compensated, stuck, recovered, taken_over."""
        raise NotImplementedError(f"{type(self).__name__} keeps no counters")

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def now() -> float:
        return time.time()
