"""Events a run emits to subscribers (CLI live view, structlog, API callbacks) and logs.

Every record of a run's log is an `Event`; its `kind` says what happened and its `data`
is the payload that kind's TypedDict below describes. Payloads are plain dicts (they are
stored as JSON, and `logs --json` prints them as they are). Run-level kinds have
`action=None`; a run-level record whose data has a `state` moves the run to that state
(see `sagactl.engine.states`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NotRequired, TypedDict


class EventKind(StrEnum):
    RUN_CREATED = "run_created"
    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    RUN_COMPENSATING = "run_compensating"
    RUN_STUCK = "run_stuck"
    RUN_WAITING = "run_waiting"
    """Every action in hand waits for a signal: the run is parked, nobody holds it."""
    RUN_QUEUED = "run_queued"
    """Emitted to subscribers only: the run waits for its turn on its concurrency key."""
    RUN_FINISHED = "run_finished"
    ACTION_STARTED = "action_started"
    ACTION_PROGRESS = "action_progress"
    """Emitted to subscribers only: the store keeps the last one per action, not a record."""
    ACTION_SUCCEEDED = "action_succeeded"
    ACTION_FAILED = "action_failed"
    ACTION_RETRYING = "action_retrying"
    COMPENSATION_STARTED = "compensation_started"
    ACTION_COMPENSATED = "action_compensated"
    COMPENSATION_FAILED = "compensation_failed"
    ACTION_SKIPPED = "action_skipped"
    """The action never ran: its condition was false, or it uses outputs of a skipped
    action (`reason` says which), or the run ended first (no reason)."""
    ACTION_FINALIZED = "action_finalized"
    """The action's `finalize` hook ran once the run's outcome was settled."""
    # One element of a `for_each` action (`data["index"]`), as the action kinds above.
    ELEMENT_STARTED = "element_started"
    ELEMENT_SUCCEEDED = "element_succeeded"
    ELEMENT_FAILED = "element_failed"
    ELEMENT_COMPENSATION_STARTED = "element_compensation_started"
    ELEMENT_COMPENSATED = "element_compensated"
    ELEMENT_COMPENSATION_FAILED = "element_compensation_failed"
    RUN_PAUSING = "run_pausing"
    """Emitted to subscribers only: the run's owner heard of a pause and starts nothing new."""
    RUN_PAUSED = "run_paused"
    """An operator paused the run (`sagactl pause`): nothing new starts until `unpause`."""
    RUN_FORKED = "run_forked"
    """The run was made from another (`sagactl run NAME --from RUN`): which, and by whom."""


# -- payloads, one per kind (a kind without one has an empty payload) ------------------
# `state` is a `RunState` value; `reason` a `StopReason` value (both str enums).


class RunCreated(TypedDict):
    state: str
    saga: str
    definition_hash: str


class RunStarted(TypedDict):
    state: str
    segment: NotRequired[int]
    """The fence of the claim of the process starting it: its trace segment's number."""


class Operator(TypedDict):
    """Who asked for an operator action (`sagactl.engine.operator.who`)."""

    user: str
    host: str
    pid: int


class RunResumed(TypedDict):
    state: str
    owner: str
    segment: NotRequired[int]
    """The fence of the resuming process's claim: its trace segment's number (absent when
    the process only marked the run runnable, e.g. `unpause` left to a worker)."""
    operation: NotRequired[str]
    """Set when an operator asked for it: `retry` or `unpause` (plain resumes have none)."""
    by: NotRequired[Operator]
    from_state: NotRequired[str]
    """The state the operator continued the run from."""
    stuck_error: NotRequired[str | None]
    """What had stopped it (a retry of a stuck run)."""


class RunPaused(TypedDict):
    state: str
    by: NotRequired[Operator]
    """Who asked (absent when the pause was found flagged by a process taking the run)."""


class RunForked(TypedDict):
    from_run: str
    by: Operator
    changed: list[str]
    """The inputs given anew (the others are the original run's)."""


class RunFailure(TypedDict):
    """What ended a run that did not succeed (part of the payloads below)."""

    error: str | None
    code: str | None
    failed_action: str | None
    bad_input: bool


class RunCompensating(RunFailure):
    state: str
    reason: str
    segment: NotRequired[int]
    """Set when this record opens a process's part of the run (a paused run cancelled)."""


class RunStuck(TypedDict):
    state: str
    error: str
    code: NotRequired[str]
    failed_action: NotRequired[str | None]
    bad_input: NotRequired[bool]


class SignalWait(TypedDict):
    action: str
    signal: str
    deadline: float | None
    """Unix time the wait times out (None: never)."""


class RunWaiting(TypedDict):
    state: str
    waits: list[SignalWait]
    wake_at: float | None
    """The earliest deadline: when a timer wakes the run (None: only a signal does)."""


class RunQueued(TypedDict):
    key: str
    ahead: int
    """Runs submitted before it that still hold or wait for the key."""
    limit: int


class RunFinished(TypedDict):
    state: str
    outputs: NotRequired[dict[str, Any]]
    """The saga's `outputs:`, resolved when it succeeded."""
    error: NotRequired[str | None]
    code: NotRequired[str | None]
    failed_action: NotRequired[str | None]
    bad_input: NotRequired[bool]


class ActionStarted(TypedDict):
    attempt: int


class ActionProgress(TypedDict):
    fraction: float | None
    message: str
    bytes: int | None


class ActionSucceeded(TypedDict):
    outputs: dict[str, Any]


class ActionFailed(TypedDict):
    error: str
    code: str
    final: bool
    attempt: NotRequired[int]
    bad_input: NotRequired[bool]


class ActionRetrying(TypedDict):
    attempt: int
    delay: float


class CompensationStarted(TypedDict):
    attempt: int


class CompensationFailed(TypedDict):
    error: str
    code: str
    attempt: int
    final: bool


class ElementStarted(ActionStarted):
    index: int
    of: int
    """How many elements the fan-out has."""


class ElementSucceeded(ActionSucceeded):
    index: int


class ElementFailed(ActionFailed):
    index: int


class ElementCompensationStarted(CompensationStarted):
    index: int


class ElementCompensated(TypedDict):
    index: int


class ElementCompensationFailed(CompensationFailed):
    index: int


class ActionSkipped(TypedDict):
    reason: NotRequired[str]


class ActionFinalized(TypedDict):
    error: NotRequired[str]
    """Set when the hook failed: it is not run again (the run's outcome stands)."""


Payload = (
    RunCreated
    | RunStarted
    | RunResumed
    | RunPaused
    | RunForked
    | RunCompensating
    | RunStuck
    | RunFinished
    | RunWaiting
    | RunQueued
    | ActionStarted
    | ActionProgress
    | ActionSucceeded
    | ActionFailed
    | ActionRetrying
    | CompensationStarted
    | CompensationFailed
    | ActionSkipped
    | ActionFinalized
    | ElementStarted
    | ElementSucceeded
    | ElementFailed
    | ElementCompensationStarted
    | ElementCompensated
    | ElementCompensationFailed
)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a run; `seq` is its position in the run's log (0 if none)."""

    run_id: str
    kind: EventKind
    action: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    at: float = 0.0
    """Unix time."""
    seq: int = 0

    def __post_init__(self) -> None:
        if type(self.kind) is not EventKind:  # read back from a store: a plain string
            object.__setattr__(self, "kind", EventKind(self.kind))


EventHandler = Callable[[Event], None]
"""A subscriber. Called on the event loop: it must not block."""
