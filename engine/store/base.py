"""The Store interface: the durable log of runs, run ownership (claims) and platform tables.

Every backend (SQLite, PostgreSQL) implements `Store`; the scheduler only ever talks to
this interface. Ownership of a run is an abstract *claim*: SQLite ties it to a live process
on this host (an OS lock), PostgreSQL to a lease with a fencing number. Every write of a run
goes through its claim, and a write under a claim that was lost raises `ClaimLost`, so a
process that lost a run can write nothing more.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

from ..action import JSON, Transaction
from ..errors import InputError, SagaError
from ..events import Event
from ..settings import NODE
from ..states import RELEASING as RELEASING
from ..states import RunState
from .pages import RunSummary

NODE_ENV = NODE.name


def this_node() -> str:
    """This machine's node name for run affinity: `$SAGACTL_NODE`, else the host name."""
    import socket  # not at import: reading runs names no node

    return NODE.read() or socket.gethostname()


class StoreError(SagaError):
    """The store failed (I/O error, a database that cannot be opened or migrated)."""

    code = "store_error"


class StoreUnusable(StoreError, InputError):
    """The database cannot serve as a store: no file named, a file that cannot be written,
    a corrupt or foreign database, a server that refuses the connection. One line naming
    the database; the CLI exits 2."""

    code = "store_unusable"


class RunBusy(SagaError):
    """The run is held by a live owner (another process, or a claim still open here)."""

    code = "run_busy"

    def __init__(self, run_id: str, owner: str | None) -> None:
        super().__init__(f"run {run_id} is held by a live process ({owner or 'this process'})")
        self.run_id = run_id
        self.owner = owner


class ClaimLost(SagaError):
    """A write under a claim that is no longer current (released, or taken over)."""

    code = "claim_lost"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"this process no longer owns run {run_id}")
        self.run_id = run_id


class RunExists(InputError):
    """A run id given again for a different request: another saga, definition or inputs.

    A run id makes a request idempotent, so it may only be repeated with the same request;
    anything else is bad input (the CLI exits 2).
    """

    code = "run_exists"


def check_same_request(existing: RunRecord, run: NewRun) -> None:
    """Raises RunExists, naming the difference, unless `run` repeats `existing`'s request."""
    if existing.definition_hash != run.definition_hash:
        raise RunExists(
            f"run {run.run_id} already exists for {existing.saga}"
            f" (definition {existing.definition_hash[:12]}), not this definition"
            f" ({run.saga}, definition {run.definition_hash[:12]})"
        )
    if existing.inputs != run.inputs:
        raise RunExists(
            f"run {run.run_id} already exists with other inputs: "
            + "; ".join(_input_differences(existing.inputs, run.inputs))
        )


def _input_differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    differences = []
    for name in sorted(set(before) | set(now)):
        if name not in now:
            differences.append(f"{name} was {_short(before[name])}, now not given")
        elif name not in before:
            differences.append(f"{name} was not given, now {_short(now[name])}")
        elif before[name] != now[name]:
            differences.append(f"{name} was {_short(before[name])}, now {_short(now[name])}")
    return differences


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Claim:
    """Proof of ownership of one run. `fence` grows with every claim of the run, so a write
    carrying an older fence is refused."""

    run_id: str
    owner: str
    fence: int
    taken_over: bool = False
    """Taken from a process that did not hand the run back (it died, or its lease ran
    out): the holder of fence `fence - 1` is gone, its last steps unfinished."""


@dataclass(frozen=True, slots=True)
class ParentLink:
    """A child saga's run names the run and the action that started it."""

    run_id: str
    action: str


@dataclass(frozen=True, slots=True)
class NewRun:
    """What a run pins when it is created: the compiled definition and plugin versions."""

    run_id: str
    saga: str
    definition_hash: str
    definition: Mapping[str, JSON]
    """`CompiledSaga.to_dict()`: a resumed run is rebuilt from this, never from the file."""
    inputs: Mapping[str, JSON]
    plugin_versions: Mapping[str, str | None] = field(default_factory=dict)
    """`uses` name -> the distribution version the run started with."""
    state: RunState = RunState.QUEUED
    node: str | None = None
    """Node affinity: only a worker on this node claims the run (None: any node)."""
    retention: float | None = None
    """Seconds the run is kept once finished (None: the store-wide default)."""
    parent: ParentLink | None = None
    """Set for a child saga's run: only its parent drives it."""
    concurrency_key: str | None = None
    """The saga's `concurrency.key` resolved for this run: runs sharing it take turns."""
    concurrency_limit: int | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of the runs table. `state` is kept in step with the log by every append."""

    run_id: str
    saga: str
    state: RunState
    definition_hash: str
    definition: Mapping[str, JSON]
    inputs: Mapping[str, JSON]
    plugin_versions: Mapping[str, str | None]
    created: float
    updated: float
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    error_code: str | None = None
    owner: str | None = None
    cancel_requested: bool = False
    node: str | None = None
    """The node the run is pinned to (`NewRun.node`, or set by `pin_node`)."""
    lease_expires: float | None = None
    """Unix time (database clock) the owner's lease runs out; None where claims are not
    leases (SQLite: a live process) or nobody holds the run."""
    trace_id: str | None = None
    """The run's OpenTelemetry trace id (32 hex digits), the same in every process."""
    parent: ParentLink | None = None
    """The parent run and action of a child saga's run."""
    concurrency_key: str | None = None
    """The key the run takes turns on (`NewRun.concurrency_key`)."""
    wake_at: float | None = None
    """A `waiting` run: when a timer (or a signal, which sets it to now) wakes it."""


@dataclass(frozen=True, slots=True)
class Turn:
    """Where a run with a concurrency key stands: `ahead` runs submitted before it still
    hold the key or wait for it; it may start once fewer than `limit` do."""

    key: str
    limit: int
    ahead: int

    @property
    def admitted(self) -> bool:
        return self.ahead < self.limit


@dataclass(frozen=True, slots=True)
class Created:
    """The result of `create_run`: the run, whether this call created it, and its claim."""

    run: RunRecord
    created: bool
    claim: Claim | None
    records: list[Event] = field(default_factory=list)
    """The log as this call wrote it: `run_created`, then the `records` passed in."""


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
    ) -> list[Event]:
        """Durably append `records` (their `seq` is ignored) and return them numbered.

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
