"""The payload of each kind of event (`events.EventKind`), as the TypedDicts the scheduler
writes: a kind without one has an empty payload.

Apart from `events.py` because a TypedDict costs more to make than it seems (each field's
annotation is compiled): the commands that only read runs never make one.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

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
