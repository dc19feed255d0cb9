"""`RunResult`: a run as it stands, as the API returns it and `status --json` prints it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .action import JSON
from .states import ActionStatus, RunState, RunStatus
from .store.base import RunRecord


@dataclass(frozen=True, slots=True)
class RunResult:
    """A run as it stands: its state, its error, and every action's state."""

    run_id: str
    saga: str
    state: RunState
    actions: Mapping[str, ActionStatus]
    error: str | None = None
    code: str | None = None
    failed_action: str | None = None
    bad_input: bool = False
    """The run failed on bad input (an `InputError`): the CLI exits 2."""
    started: float | None = None
    finished: float | None = None
    progress: Mapping[str, JSON] = field(default_factory=dict)
    owner: str | None = None
    """The worker holding the run (None: nobody)."""
    lease_expires: float | None = None
    """When the owner's lease runs out (unix time, database clock); None without leases."""
    node: str | None = None
    """The node the run is pinned to, if any."""

    @property
    def ok(self) -> bool:
        return self.state is RunState.SUCCEEDED

    @property
    def exit_code(self) -> int:
        """0 succeeded (or paused: not an outcome), 2 bad input, 1 any other outcome
        (README, "Exit codes")."""
        if self.ok or self.state is RunState.PAUSED:
            return 0
        return 2 if self.bad_input else 1

    def to_json(self) -> dict[str, Any]:
        """The `status --json` object."""
        return {
            "run_id": self.run_id,
            "saga": self.saga,
            "state": self.state.value,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
            "owner": self.owner,
            "lease_expires": self.lease_expires,
            "node": self.node,
            "actions": {name: s.to_json() for name, s in self.actions.items()},
        }


def result_of(
    record: RunRecord, status: RunStatus, progress: Mapping[str, JSON] | None = None
) -> RunResult:
    """The result of a run from its row and its folded log."""
    return RunResult(
        run_id=record.run_id,
        saga=record.saga,
        state=status.state or RunState(record.state),
        actions=status.actions,
        error=status.error,
        code=status.code,
        failed_action=status.failed_action,
        bad_input=status.bad_input,
        started=status.started,
        finished=status.finished,
        progress=progress or {},
        owner=record.owner,
        lease_expires=record.lease_expires,
        node=record.node,
    )
