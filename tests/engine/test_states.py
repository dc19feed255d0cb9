"""The state machine: allowed moves, forbidden moves, and the fold from records."""

from __future__ import annotations

import pytest
from sagactl.engine.events import Event, EventKind
from sagactl.engine.states import (
    ACTION_TRANSITIONS,
    FINISHED,
    RUN_TRANSITIONS,
    ActionState,
    InvalidTransition,
    RunState,
    check_action,
    check_run,
    fold,
)

R, A = RunState, ActionState


def rec(kind: str, action: str | None = None, **data: object) -> Event:
    return Event("r", kind, action, data)


class TestTransitions:
    def test_finished_runs_never_move(self) -> None:
        """No transition leaves compensated, abandoned or cancelled; from succeeded, only
        to compensating (a child saga whose parent compensates)."""
        leaving = [pair for pair in RUN_TRANSITIONS if pair[0] in FINISHED]
        assert leaving == [(R.SUCCEEDED, R.COMPENSATING)]
        for old in FINISHED:
            for new in RunState:
                if (old, new) in leaving:
                    check_run(old, new)
                    continue
                with pytest.raises(InvalidTransition):
                    check_run(old, new)

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            (R.QUEUED, R.SUCCEEDED),
            (R.RUNNING, R.QUEUED),
            (R.COMPENSATING, R.RUNNING),
            (R.RUNNING, R.COMPENSATED),
            (R.QUEUED, R.STUCK),
        ],
    )
    def test_forbidden_run_moves_raise(self, old: RunState, new: RunState) -> None:
        """A run cannot skip compensation, go back to queued, or compensate forward."""
        with pytest.raises(InvalidTransition, match=f"from {old} to {new}"):
            check_run(old, new)

    def test_a_run_starts_queued(self) -> None:
        """The first state of a run is queued and nothing else."""
        check_run(None, R.QUEUED)
        with pytest.raises(InvalidTransition):
            check_run(None, R.RUNNING)

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            (A.PENDING, A.SUCCEEDED),
            (A.FAILED, A.SUCCEEDED),
            (A.COMPENSATED, A.RUNNING),
            (A.SKIPPED, A.RUNNING),
            (A.SUCCEEDED, A.RUNNING),
            (A.PENDING, A.COMPENSATING),
        ],
    )
    def test_forbidden_action_moves_raise(self, old: ActionState, new: ActionState) -> None:
        """An action cannot succeed unstarted or after failing, or run again once done (a
        failed action compensates only a fan-out's completed elements)."""
        with pytest.raises(InvalidTransition, match="action x"):
            check_action("x", old, new)

    def test_every_allowed_move_passes(self) -> None:
        """The sets are what the checks enforce."""
        for old, new in RUN_TRANSITIONS:
            check_run(old, new)
        for old_a, new_a in ACTION_TRANSITIONS:
            check_action("x", old_a, new_a)


class TestFold:
    def test_fold_derives_states_attempts_and_outputs(self) -> None:
        """Folding a log gives each action's state, attempts, error and outputs."""
        status = fold(
            "r",
            ["a", "b", "c"],
            [
                rec(EventKind.RUN_CREATED, state="queued"),
                rec(EventKind.RUN_STARTED, state="running"),
                rec(EventKind.ACTION_STARTED, "a", attempt=1),
                rec(EventKind.ACTION_FAILED, "a", error="flaky", final=False),
                rec(EventKind.ACTION_STARTED, "a", attempt=2),
                rec(EventKind.ACTION_SUCCEEDED, "a", outputs={"x": 1}),
                rec(EventKind.ACTION_STARTED, "b", attempt=1),
                rec(EventKind.ACTION_FAILED, "b", error="boom", code="fatal"),
                rec(
                    EventKind.RUN_COMPENSATING, state="compensating", reason="failure", error="boom"
                ),
                rec(EventKind.COMPENSATION_STARTED, "a", attempt=1),
                rec(EventKind.ACTION_COMPENSATED, "a"),
                rec(EventKind.ACTION_SKIPPED, "c"),
                rec(EventKind.RUN_FINISHED, state="compensated", error="boom"),
            ],
        )
        assert status.state is R.COMPENSATED and status.error == "boom"
        assert status.reason == "failure"
        a, b, c = (status.actions[n] for n in "abc")
        assert (a.state, a.attempts, a.outputs, a.error) == (A.COMPENSATED, 2, {"x": 1}, None)
        assert (b.state, b.error, b.code) == (A.FAILED, "boom", "fatal")
        assert c.state is A.SKIPPED

    def test_fold_refuses_a_corrupt_log(self) -> None:
        """A log whose records make a forbidden move raises instead of guessing."""
        with pytest.raises(InvalidTransition):
            fold(
                "r",
                ["a"],
                [rec(EventKind.RUN_CREATED, state="queued"), rec(EventKind.ACTION_SUCCEEDED, "a")],
            )

    def test_status_json_has_the_documented_fields(self) -> None:
        """ActionStatus.to_json has state, attempts, error and outputs."""
        status = fold("r", ["a"], [rec(EventKind.RUN_CREATED, state="queued")])
        assert status.actions["a"].to_json() == {
            "state": "pending",
            "attempts": 0,
            "error": None,
            "outputs": None,
        }
