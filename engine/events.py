"""Events a run emits to subscribers (CLI live view, structlog, API callbacks) and logs.

Every record of a run's log is an `Event`; its `kind` says what happened and its `data`
is the payload that kind's TypedDict (`event_payloads.py`) describes. Payloads are plain
dicts (they are stored as JSON, and `logs --json` prints them as they are). Run-level kinds have
`action=None`; a run-level record whose data has a `state` moves the run to that state
(see `sagactl.engine.states`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any


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


_NO_DATA: Mapping[str, Any] = MappingProxyType({})
"""`Event`'s default `data`, replaced by a new dict of its own."""


@dataclass(frozen=True, slots=True, init=False)
class Event:
    """Something that happened in a run; `seq` is its position in the run's log (0 if none)."""

    run_id: str
    kind: EventKind
    action: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    at: float = 0.0
    """Unix time."""
    seq: int = 0

    def __init__(
        self,
        run_id: str,
        kind: EventKind,
        action: str | None = None,
        data: Mapping[str, Any] = _NO_DATA,
        at: float = 0.0,
        seq: int = 0,
    ) -> None:
        # Frozen, so each field is set by its slot's own setter: the `object.__setattr__`
        # calls of a frozen dataclass's generated `__init__` cost twice as much, and every
        # action makes a few records (about 3% of an action's instructions).
        set_run_id, set_kind, set_action, set_data, set_at, set_seq = _SETTERS
        set_run_id(self, run_id)
        # (a kind read back from a store is a plain string)
        set_kind(self, kind if type(kind) is EventKind else EventKind(kind))
        set_action(self, action)
        set_data(self, {} if data is _NO_DATA else data)
        set_at(self, at)
        set_seq(self, seq)


_SETTERS = tuple(vars(Event)[f.name].__set__ for f in fields(Event))
"""The setters of `Event`'s slots, in the order of its fields."""


EventHandler = Callable[[Event], None]
"""A subscriber. Called on the event loop: it must not block."""
