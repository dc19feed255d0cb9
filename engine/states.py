"""The state machine of runs and actions: allowed transitions, and the fold from the log.

Every state a run or an action can be in, and every move between them, is stated here
and nowhere else. The scheduler checks each move with `check_run` / `check_action`
before logging it, and `fold` rebuilds the states from a run's records, so recovery,
`status` and the live view all read the same truth. The run's state also says what
drives it next (`sagactl.engine.scheduler.execution`): `running` is the forward phase,
`compensating` the compensation phase, and every other state has nothing left to run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import SagaError
from .events import Event, EventKind


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    """Parked in the store, held by no process, until a signal or a timer wakes it."""
    COMPENSATING = "compensating"
    SUCCEEDED = "succeeded"
    COMPENSATED = "compensated"
    STUCK = "stuck"
    ABANDONED = "abandoned"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    """An operator paused it: nothing new starts and nobody claims it until `unpause`."""


class ActionState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    SKIPPED = "skipped"


class StopReason(StrEnum):
    """Why a run stops going forward and compensates."""

    FAILURE = "failure"
    """An action failed for good."""
    CANCEL = "cancel"
    """An operator cancelled the run."""
    PARENT = "parent"
    """A child saga that succeeded is undone because its parent compensates."""


R, A, K = RunState, ActionState, EventKind
# Members read per record or per action, as module names: each read of a member from its
# class goes through the hook `EnumType.__getattr__` puts on the class (Python 3.11), about
# four times the cost of reading a module name.
_STARTED, _SUCCEEDED = K.ACTION_STARTED, K.ACTION_SUCCEEDED

RUN_TRANSITIONS: frozenset[tuple[RunState, RunState]] = frozenset(
    {
        (R.QUEUED, R.RUNNING),
        (R.QUEUED, R.CANCELLED),
        (R.QUEUED, R.ABANDONED),
        (R.RUNNING, R.RUNNING),  # resumed after its owner died
        (R.RUNNING, R.SUCCEEDED),
        (R.RUNNING, R.COMPENSATING),
        (R.RUNNING, R.STUCK),  # a failure after a pivot ran out of attempts
        (R.RUNNING, R.ABANDONED),
        (R.RUNNING, R.WAITING),  # every action in hand waits for a signal: parked
        (R.WAITING, R.RUNNING),  # woken by a signal, a timer, or an operator's cancel
        (R.WAITING, R.ABANDONED),
        (R.COMPENSATING, R.COMPENSATING),  # resumed: keeps compensating
        (R.COMPENSATING, R.COMPENSATED),
        (R.COMPENSATING, R.CANCELLED),
        (R.COMPENSATING, R.STUCK),  # a compensation kept failing
        (R.COMPENSATING, R.ABANDONED),
        (R.STUCK, R.RUNNING),  # an operator resumes a run stuck going forward
        (R.STUCK, R.COMPENSATING),  # ... or one stuck compensating
        (R.STUCK, R.ABANDONED),
        (R.SUCCEEDED, R.COMPENSATING),  # a child saga whose parent compensates
        (R.QUEUED, R.PAUSED),  # paused before it started
        (R.RUNNING, R.PAUSED),  # paused once the actions in hand finished
        (R.PAUSED, R.RUNNING),  # unpaused
        (R.PAUSED, R.COMPENSATING),  # cancelled while paused: still compensates
        (R.PAUSED, R.ABANDONED),
    }
)

ACTION_TRANSITIONS: frozenset[tuple[ActionState, ActionState]] = frozenset(
    {
        (A.PENDING, A.RUNNING),
        (A.PENDING, A.SKIPPED),  # the run ended before it could start
        (A.RUNNING, A.RUNNING),  # rerun after a crash, same idempotency key
        (A.RUNNING, A.SUCCEEDED),
        (A.RUNNING, A.FAILED),
        (A.FAILED, A.RUNNING),  # retry, or an operator resumes a stuck run
        (A.SUCCEEDED, A.COMPENSATING),
        (A.COMPENSATING, A.COMPENSATING),  # compensation retried or resumed
        (A.COMPENSATING, A.COMPENSATED),
    }
)

FINISHED: frozenset[RunState] = frozenset({R.SUCCEEDED, R.COMPENSATED, R.ABANDONED, R.CANCELLED})
"""Runs that will never change again (but a child saga's succeeded run, which its
parent may compensate)."""
UNFINISHED: frozenset[RunState] = frozenset({R.QUEUED, R.RUNNING, R.COMPENSATING})
"""Runs that `resume --all` (and every worker) picks up. `stuck` waits for an operator."""
RELEASING: frozenset[RunState] = FINISHED | {R.STUCK, R.WAITING, R.PAUSED}
"""Runs whose record releases the claim it was written under: nothing runs on by itself
(a waiting run is woken by a signal or a timer, `sagactl.engine.parking`; a paused one by
`unpause`)."""
DONE_FORWARD: frozenset[ActionState] = frozenset({A.SUCCEEDED, A.SKIPPED})
"""Actions the forward phase is done with: succeeded, or skipped by a condition (while a
run goes forward, nothing else is skipped). Their dependents may start."""
DID_NOT_SUCCEED: frozenset[RunState] = frozenset({R.COMPENSATED, R.STUCK, R.CANCELLED})


class InvalidTransition(SagaError):
    """A move the state machine forbids: a bug in the engine or a corrupted log."""

    code = "invalid_transition"


def check_run(old: RunState | None, new: RunState) -> None:
    """Raise `InvalidTransition` unless a run may move from `old` (None: not yet created)."""
    if old is None:
        if new is not R.QUEUED:
            raise InvalidTransition(f"a run starts queued, not {new}")
        return
    if (old, new) not in RUN_TRANSITIONS:
        raise InvalidTransition(f"a run cannot go from {old} to {new}")


def check_action(name: str, old: ActionState, new: ActionState) -> None:
    if (old, new) not in ACTION_TRANSITIONS:
        raise InvalidTransition(f"action {name} cannot go from {old} to {new}")


ACTION_KIND_STATE: Mapping[EventKind, ActionState] = {
    K.ACTION_STARTED: A.RUNNING,
    K.ACTION_SUCCEEDED: A.SUCCEEDED,
    K.ACTION_FAILED: A.FAILED,
    K.COMPENSATION_STARTED: A.COMPENSATING,
    K.COMPENSATION_FAILED: A.COMPENSATING,
    K.ACTION_COMPENSATED: A.COMPENSATED,
    K.ACTION_SKIPPED: A.SKIPPED,
}
"""Which state each action-level record moves its action to (other kinds move nothing)."""

ELEMENT_KINDS: Mapping[EventKind, EventKind] = {
    K.ELEMENT_STARTED: K.ACTION_STARTED,
    K.ELEMENT_SUCCEEDED: K.ACTION_SUCCEEDED,
    K.ELEMENT_FAILED: K.ACTION_FAILED,
    K.ELEMENT_COMPENSATION_STARTED: K.COMPENSATION_STARTED,
    K.ELEMENT_COMPENSATED: K.ACTION_COMPENSATED,
    K.ELEMENT_COMPENSATION_FAILED: K.COMPENSATION_FAILED,
}
"""A `for_each` element's records, and the action record each moves its element as."""


def run_state_of(record: Event) -> RunState | None:
    """The state a run-level record moves its run to, if it moves it."""
    if record.action is None and "state" in record.data:
        state = record.data["state"]
        # A record made in this process holds the member already (Enum's call is Python).
        return state if type(state) is RunState else RunState(state)
    return None


@dataclass(slots=True)
class ActionStatus:
    """One action as the log tells it."""

    state: ActionState = A.PENDING
    attempts: int = 0
    """Forward attempts started, across retries and recoveries."""
    compensation_attempts: int = 0
    error: str | None = None
    code: str | None = None
    outputs: dict[str, Any] | None = None
    final_failure: bool = False
    """The last failure used up the attempts (the action will not be retried by itself)."""
    finalized: bool = False
    """Its `finalize` hook ran (recorded: it never runs twice)."""
    elements: dict[int, ActionStatus] | None = None
    """A `for_each` action's elements that have a record, by index (None: no element has)."""
    count: int | None = None
    """A `for_each` action's number of elements, once one started."""
    reason: str | None = None
    """Why it was skipped, when a condition skipped it."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "state": str(self.state),
            "attempts": self.attempts,
            "error": self.error,
            "outputs": self.outputs,
        }
        if self.elements is not None:
            data["count"] = self.count
            data["elements"] = [
                {"index": i, **self.elements[i].to_json()} for i in sorted(self.elements)
            ]
        if self.reason is not None:
            data["reason"] = self.reason
        return data

    def tally(self) -> tuple[int, int | None]:
        """A `for_each` action's elements that succeeded, and how many it has (None: not
        known until its array is)."""
        elements = self.elements or {}
        done = sum(1 for e in elements.values() if e.state is A.SUCCEEDED)
        total = self.count
        if total is None and self.outputs is not None and "results" in self.outputs:
            total = len(self.outputs["results"])  # an empty array: no element has a record
        return done, total

    def element(self, index: int) -> ActionStatus:
        """Element `index` of a `for_each` action (pending when it has no record yet)."""
        if self.elements is None:
            self.elements = {}
        found = self.elements.get(index)
        if found is None:
            found = self.elements[index] = ActionStatus()
        return found

    def move(self, name: str, kind: EventKind, data: Mapping[str, Any]) -> None:
        """Apply an action-level record of `kind` to this action (or element) `name`."""
        target = ACTION_KIND_STATE[kind]
        if (self.state, target) not in ACTION_TRANSITIONS:  # (one call fewer per record)
            check_action(name, self.state, target)
        self.state = target
        if kind is _STARTED:
            self.attempts = int(data.get("attempt", self.attempts + 1))
            self.error = self.code = None
            self.final_failure = False
        elif kind is _SUCCEEDED:
            self.outputs = dict(data.get("outputs") or {})
        elif kind is K.ACTION_FAILED:
            self.error, self.code = data.get("error"), data.get("code")
            self.final_failure = bool(data.get("final", True))
        elif kind is K.COMPENSATION_STARTED:
            self.compensation_attempts = int(data.get("attempt", self.compensation_attempts + 1))
            self.error = self.code = None
        elif kind is K.COMPENSATION_FAILED:
            self.error, self.code = data.get("error"), data.get("code")
            self.final_failure = bool(data.get("final", True))
        elif kind is K.ACTION_COMPENSATED:
            self.error = self.code = None
        elif kind is K.ACTION_SKIPPED:
            self.reason = data.get("reason")


@dataclass(slots=True)
class RunStatus:
    """A run as its log tells it: `fold` builds it, `apply` moves it one record on."""

    run_id: str
    state: RunState | None = None
    actions: dict[str, ActionStatus] = field(default_factory=dict)
    error: str | None = None
    code: str | None = None
    reason: StopReason | None = None
    """Why the run compensates."""
    failed_action: str | None = None
    bad_input: bool = False
    """The failure that ended the run was bad input (an `InputError`)."""
    started: float | None = None
    finished: float | None = None
    last_seq: int = 0
    saga_outputs: dict[str, Any] | None = None
    """The saga's `outputs:` as its success recorded them."""
    waits: list[dict[str, Any]] = field(default_factory=list)
    """What a `waiting` run waits for (`RunWaiting.waits`); empty otherwise."""

    def apply(self, record: Event) -> None:
        """Move on by one record; raises `InvalidTransition` on a forbidden move."""
        if record.seq > self.last_seq:
            self.last_seq = record.seq
        data = record.data
        kind = record.kind
        if record.action is None:
            new = run_state_of(record)
            if new is None:
                return
            check_run(self.state, new)
            self.state = new
            if new is R.RUNNING and self.started is None:
                self.started = record.at
            self.finished = record.at if new in FINISHED else None
            self.waits = list(data.get("waits", ())) if new is R.WAITING else []
            if "bad_input" in data:
                self.bad_input = bool(data["bad_input"])
            if "outputs" in data:
                self.saga_outputs = dict(data["outputs"])
            if kind is K.RUN_COMPENSATING:
                self.reason = StopReason(data["reason"]) if data.get("reason") else None
            if new in (R.RUNNING, R.COMPENSATING) and kind is K.RUN_RESUMED:
                self.error = self.code = None
            if "error" in data or new in (R.STUCK, R.COMPENSATING):
                self.error = data.get("error", self.error)
                self.code = data.get("code", self.code)
                self.failed_action = data.get("failed_action", self.failed_action)
            return
        if kind in ACTION_KIND_STATE:  # the usual record first
            status = self.actions.get(record.action)
            if status is None:
                status = self.actions[record.action] = ActionStatus()
            status.move(record.action, kind, data)
            return
        as_action = ELEMENT_KINDS.get(kind)
        if as_action is not None:
            parent = self.actions.setdefault(record.action, ActionStatus())
            index = int(data["index"])
            if "of" in data:
                parent.count = int(data["of"])
            parent.element(index).move(f"{record.action}[{index}]", as_action, data)
            return
        if kind is K.ACTION_FINALIZED:
            status = self.actions.setdefault(record.action, ActionStatus())
            if status.finalized or not status.attempts:
                raise InvalidTransition(
                    f"action {record.action} cannot be finalized: never started, or already"
                )
            status.finalized = True

    def in_state(self, *states: ActionState) -> list[str]:
        return [name for name, s in self.actions.items() if s.state in states]

    def outputs(self) -> dict[str, dict[str, Any]]:
        """Outputs of every action that completed (kept after it was compensated)."""
        return {name: s.outputs for name, s in self.actions.items() if s.outputs is not None}


def fold(run_id: str, actions: Iterable[str], records: Iterable[Event]) -> RunStatus:
    """The run's state and every action's, derived from its records in log order."""
    status = RunStatus(run_id=run_id, actions={name: ActionStatus() for name in actions})
    for record in records:
        status.apply(record)
    return status
