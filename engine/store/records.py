"""What the store holds and says, apart from the `Store` interface (`base.py`): a run's
row, a claim, a new run, the store's errors. Light on purpose: the commands that only
read runs import these, never the interface and its transactions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError, SagaError
from ..events import Event
from ..settings import NODE
from ..states import RunState

if TYPE_CHECKING:
    from ..action import JSON

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
