"""`RunResult`: a run as it stands, as the API returns it and `status --json` prints it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .states import ActionStatus, RunState, RunStatus
from .store.records import ParentLink, RunRecord

if TYPE_CHECKING:
    from .action import JSON


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
    outputs: Mapping[str, JSON] | None = None
    """The saga's `outputs:` once it succeeded (None before)."""
    parent: ParentLink | None = None
    """For a child saga's run: the parent run and its action."""
    children: Mapping[str, RunResult] = field(default_factory=dict)
    """Action -> the run of its child saga, for each that started (`Engine.status`)."""
    waits: Sequence[Mapping[str, Any]] = ()
    """A `waiting` run: each action's signal and deadline (`RunWaiting.waits`)."""
    concurrency_key: str | None = None
    """The key the run takes turns on, if its saga has one."""

    @property
    def ok(self) -> bool:
        return self.state is RunState.SUCCEEDED

    @property
    def exit_code(self) -> int:
        """0 succeeded, parked waiting for a signal, or paused (neither is an outcome), 2 bad
        input, 1 any other outcome (README, "Exit codes")."""
        if self.ok or self.state in (RunState.WAITING, RunState.PAUSED):
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
            "outputs": None if self.outputs is None else dict(self.outputs),
            "parent": None
            if self.parent is None
            else {"run_id": self.parent.run_id, "action": self.parent.action},
            "concurrency_key": self.concurrency_key,
            "waiting_for": [dict(w) for w in self.waits],
            "actions": {name: self._action_json(name, s) for name, s in self.actions.items()},
        }

    def action_states(self) -> dict[str, str]:
        """Action -> state, a child saga's actions as `ACTION/CHILD_ACTION` (what
        `graph --run` draws)."""
        states = {name: str(s.state) for name, s in self.actions.items()}
        for name, child in self.children.items():
            states.update((f"{name}/{k}", v) for k, v in child.action_states().items())
        return states

    def _action_json(self, name: str, status: ActionStatus) -> dict[str, Any]:
        data = status.to_json()
        child = self.children.get(name)
        if child is not None:
            data["child"] = child.to_json()
        return data


def result_of(
    record: RunRecord,
    status: RunStatus,
    progress: Mapping[str, JSON] | None = None,
    *,
    released: bool = False,
) -> RunResult:
    """The result of a run from its row and its folded log; `released`: the claim on it
    was given up since the row was read, so nobody holds it (no owner, no lease)."""
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
        owner=None if released else record.owner,
        lease_expires=None if released else record.lease_expires,
        node=record.node,
        outputs=status.saga_outputs,
        parent=record.parent,
        waits=status.waits,
        concurrency_key=record.concurrency_key,
    )
