"""The frontier: which actions of a run may start now, and which this process has in hand.

An action may start once every dependency succeeded (or was skipped); ready actions start
lowest topological position first, at most `max_parallel` in hand at once. A ready action
its conditions skip is recorded skipped instead, and its dependents become ready at once.
"""

from __future__ import annotations

import heapq

from ..event_payloads import ActionSkipped, ActionStarted
from ..events import Event, EventKind
from ..model import CompiledSaga
from ..states import DONE_FORWARD, ActionState, RunStatus
from .conditions import Conditions
from .journal import Recorder

A = ActionState
# Members read per record or per action, as module names (why: see `engine/states.py`).
_PENDING, _STARTED, _SKIPPED = A.PENDING, EventKind.ACTION_STARTED, EventKind.ACTION_SKIPPED
STARTABLE = frozenset({A.PENDING, A.RUNNING, A.FAILED})
"""Never started, started but not recorded before a crash, or failed and resumed."""


class Frontier:
    """The ready queue and the actions in hand of one run (`status` is the run's)."""

    def __init__(
        self, saga: CompiledSaga, status: RunStatus, max_parallel: int, conditions: Conditions
    ) -> None:
        self._saga = saga
        self._status = status
        self._max_parallel = max_parallel
        self.conditions = conditions
        # (the saga's own tables, worked out once per saga, not once per run)
        self.index = saga.positions
        """Action -> its topological position."""
        self._needs = saga.needs
        """Action -> its dependencies (checked whenever one of them is done)."""
        self._heap: list[tuple[int, str]] = []
        self._queued: set[str] = set()
        self._in_hand: dict[str, None] = {}  # a dict keeps the order they started in

    @property
    def busy(self) -> bool:
        """Some action is in hand."""
        return bool(self._in_hand)

    def in_hand(self) -> list[str]:
        """Actions started (intent recorded) and not yet done, in the order they started."""
        return list(self._in_hand)

    def queue_ready(self) -> None:
        """Queue every startable action whose dependencies succeeded."""
        for name in self._saga.topological_order():
            if self._status.actions[name].state in STARTABLE:
                self._queue(name)

    def start(self, recorder: Recorder) -> list[Event]:
        """Intents (`action_started`) for as many queued actions as free slots allow, and
        the skips of those their conditions skip."""
        records: list[Event] = []
        actions = self._status.actions
        while self._heap and len(self._in_hand) < self._max_parallel:
            _, name = heapq.heappop(self._heap)
            self._queued.discard(name)
            status = actions[name]
            if name in self._in_hand or status.state not in STARTABLE:
                continue
            conditions = self.conditions
            pending = status.state is _PENDING
            reason = conditions.skip_reason(name) if pending and conditions.any else None
            if reason is not None:
                skipped = ActionSkipped(reason=reason)
                records.append(recorder.record(_SKIPPED, name, skipped))
                self._queue_dependents(name)
                continue
            self._in_hand[name] = None
            # A literal: calling the TypedDict builds the same dict at three times the cost.
            data: ActionStarted = {"attempt": status.attempts + 1}
            records.append(recorder.record(_STARTED, name, data))
        return records

    def succeeded(self, name: str) -> None:
        """`name` is recorded succeeded: let go of it and queue what it made ready."""
        self._in_hand.pop(name, None)
        self._queue_dependents(name)

    def _queue_dependents(self, name: str) -> None:
        actions = self._status.actions
        for dependent in self._saga.dependents_in_order(name):
            if actions[dependent].state is _PENDING:
                self._queue(dependent)

    def drop(self, name: str) -> None:
        """`name` is no longer in hand (it failed for good)."""
        self._in_hand.pop(name, None)

    def clear(self) -> None:
        self._in_hand.clear()

    def _queue(self, name: str) -> None:
        if name in self._in_hand or name in self._queued:
            return
        actions = self._status.actions
        for dependency in self._needs[name]:  # a loop: `all(...)` costs a generator per call
            if actions[dependency].state not in DONE_FORWARD:
                return
        self._queued.add(name)
        heapq.heappush(self._heap, (self.index[name], name))
