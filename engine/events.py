"""Events a run emits to subscribers (CLI live view, structlog, API callbacks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Event kinds. Run-level kinds have `action=None`; a run-level record whose data has a
# `state` moves the run to that state (see `sagactl.engine.states`).
RUN_CREATED = "run_created"  # data: state (queued), saga, definition_hash
RUN_STARTED = "run_started"  # data: state (running)
RUN_RESUMED = "run_resumed"  # data: state, owner
RUN_COMPENSATING = "run_compensating"  # data: state, reason (failure|cancel), error, code
RUN_STUCK = "run_stuck"  # data: state (stuck), error, code, failed_action
RUN_FINISHED = "run_finished"  # data: state, error, code, bad_input
ACTION_STARTED = "action_started"  # data: attempt
ACTION_PROGRESS = "action_progress"  # data: fraction, message, bytes
ACTION_SUCCEEDED = "action_succeeded"  # data: outputs
ACTION_FAILED = "action_failed"  # data: error, attempt, final (bool)
ACTION_RETRYING = "action_retrying"  # data: attempt, delay
COMPENSATION_STARTED = "compensation_started"  # data: attempt
ACTION_COMPENSATED = "action_compensated"
COMPENSATION_FAILED = "compensation_failed"  # data: error, final
ACTION_SKIPPED = "action_skipped"  # never ran: the run ended first


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a run; `seq` is its position in the run's log (0 if none)."""

    run_id: str
    kind: str
    action: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    at: float = 0.0
    """Unix time."""
    seq: int = 0


EventHandler = Callable[[Event], None]
"""A subscriber. Called on the event loop: it must not block."""
