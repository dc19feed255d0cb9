"""Scheduler laws: concurrency, dependencies, compensation, pivots, timeouts, retries, cancel."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
import structlog
from sagactl.engine import (
    Action,
    ActionContext,
    ActionSpec,
    CompiledSaga,
    FatalError,
    RetryPolicy,
)
from sagactl.engine.api import Engine, RunResult
from sagactl.engine.events import Event, EventKind

from .sagas import FakeClock, Journal, Script, Step, make_saga

pytestmark = pytest.mark.anyio

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


async def run(
    db: str,
    saga: CompiledSaga,
    script: Script | None = None,
    **options: Any,
) -> tuple[RunResult, Journal, list[Event]]:
    journal, events = Journal(), []
    options.setdefault("clock", FakeClock())
    async with Engine(
        db, actions={"step": Step(journal, script)}, on_event=events.append, **options
    ) as engine:
        result = await engine.run(saga)
    return result, journal, events


def states(result: RunResult) -> dict[str, str]:
    return {name: str(s.state) for name, s in result.actions.items()}


class TestForward:
    async def test_independent_branches_overlap(self, db: str) -> None:
        """b and c, both ready after a, are executing at the same time."""
        result, journal, _ = await run(db, make_saga(DIAMOND), Script(sleep={"b": 0.05, "c": 0.05}))
        assert result.ok
        order = [(w, a) for w, a, _ in journal.entries]
        assert order.index(("execute", "c")) < order.index(("done", "b"))
        assert order.index(("execute", "b")) < order.index(("done", "c"))

    async def test_nothing_starts_before_its_dependencies(self, db: str) -> None:
        """Every action executes only after each of its dependencies finished."""
        result, journal, _ = await run(db, make_saga(DIAMOND), Script(sleep={"b": 0.02}))
        assert result.ok and states(result) == dict.fromkeys(DIAMOND, "succeeded")
        order = [(w, a) for w, a, _ in journal.entries]
        for action, needs in DIAMOND.items():
            for dep in needs:
                assert order.index(("done", dep)) < order.index(("execute", action))

    async def test_per_saga_limit_bounds_concurrency(self, db: str) -> None:
        """With max_parallel=1 independent actions never overlap."""
        saga = make_saga({f"x{i}": [] for i in range(4)})
        _, journal, _ = await run(
            db, saga, Script(sleep={f"x{i}": 0.01 for i in range(4)}), max_parallel=1
        )
        whats = [w for w, _, _ in journal.entries]
        assert whats == ["execute", "done"] * 4

    async def test_outputs_flow_along_references(self, db: str) -> None:
        """A whole-string reference hands the upstream output to the next action."""

        class Echo(Action):
            async def execute(
                self, ctx: ActionContext, inputs: Mapping[str, Any]
            ) -> dict[str, Any]:
                return {"got": inputs.get("v"), "run": inputs.get("run")}

        saga = CompiledSaga(
            name="refs",
            version=1,
            inputs={"seed": {"type": "integer"}},
            actions={
                "a": ActionSpec("a", "echo", {"v": "${{ inputs.seed }}"}),
                "b": ActionSpec(
                    "b",
                    "echo",
                    {"v": "${{ actions.a.outputs.got }}", "run": "${{ saga.id }}"},
                    depends_on=frozenset({"a"}),
                ),
            },
        )
        async with Engine(db, actions={"echo": Echo()}) as engine:
            result = await engine.run(saga, {"seed": 7}, run_id="refs-1")
        assert result.actions["b"].outputs == {"got": 7, "run": "refs-1"}

    async def test_each_saga_resolves_its_own_references(self, db: str) -> None:
        """The references of an action's `with:` are worked out once per saga: two sagas
        with the same action names, one engine, each run's inputs from its own saga (whole
        references, a template, a constant, a missing output failing as bad input)."""

        class Echo(Action):
            async def execute(
                self, ctx: ActionContext, inputs: Mapping[str, Any]
            ) -> dict[str, Any]:
                return {"got": dict(inputs)}

        def saga(name: str, with_b: Mapping[str, Any]) -> CompiledSaga:
            return CompiledSaga(
                name=name,
                version=1,
                inputs={"seed": {"type": "integer"}},
                actions={
                    "a": ActionSpec("a", "echo", {"v": "${{ inputs.seed }}"}),
                    "b": ActionSpec("b", "echo", with_b, depends_on=frozenset({"a"})),
                },
            )

        whole = saga("whole", {"v": "${{ actions.a.outputs.got }}", "id": "${{ saga.name }}"})
        mixed = saga("mixed", {"v": "seed ${{ inputs.seed }}", "k": 3})
        missing = saga("missing", {"v": "${{ actions.a.outputs.nothing }}"})
        async with Engine(db, actions={"echo": Echo()}) as engine:
            for _ in range(2):
                first = await engine.run(whole, {"seed": 7})
                second = await engine.run(mixed, {"seed": 8})
                third = await engine.run(missing, {"seed": 9})
                assert first.actions["b"].outputs == {"got": {"v": {"v": 7}, "id": "whole"}}
                assert second.actions["b"].outputs == {"got": {"v": "seed 8", "k": 3}}
                assert third.bad_input and third.failed_action == "b"
                assert third.error == "action 'a' has no output 'nothing'"

    async def test_process_limit_holds_ready_branches_back(self, db: str) -> None:
        """With one slot process-wide, b and c (ready together) execute one after the
        other: the second waits for the first's slot, then gets it."""
        script = Script(sleep={"b": 0.02, "c": 0.02})
        result, journal, _ = await run(db, make_saga(DIAMOND), script, process_limit=1)
        assert result.ok and states(result) == dict.fromkeys(DIAMOND, "succeeded")
        order = [(w, a) for w, a, _ in journal.entries]
        first, second = sorted("bc", key=lambda a: order.index(("execute", a)))
        assert order.index(("done", first)) < order.index(("execute", second))

    async def test_the_log_context_of_actions_ends_with_the_run(self, db: str) -> None:
        """The first ready action runs in the run's own task: the action it binds for the
        log is gone once the run is over, and what the caller bound is as it was."""
        structlog.contextvars.bind_contextvars(action="caller's", caller=1)
        try:
            result, _, _ = await run(db, make_saga({"a": [], "b": ["a"]}))
            assert result.ok
            bound = structlog.contextvars.get_contextvars()
            assert bound.get("action") == "caller's" and bound.get("caller") == 1
            structlog.contextvars.unbind_contextvars("action")
            result, _, _ = await run(db, make_saga({"a": []}, name="solo"))
            assert result.ok and "action" not in structlog.contextvars.get_contextvars()
        finally:
            structlog.contextvars.clear_contextvars()

    async def test_events_follow_the_log(self, db: str) -> None:
        """Subscribers get every logged record, numbered, in log order, ending run_finished."""
        result, _, events = await run(db, make_saga({"a": []}))
        kinds = [e.kind for e in events]
        assert kinds == [
            EventKind.RUN_STARTED,
            EventKind.ACTION_STARTED,
            EventKind.ACTION_SUCCEEDED,
            EventKind.RUN_FINISHED,
        ]
        assert [e.seq for e in events] == [2, 3, 4, 5]
        assert result.exit_code == 0


class TaskNoting(Step):
    """A `Step` that notes which task executes each action (the task itself: the id of
    one that ended may be another's)."""

    def __init__(self, journal: Journal, script: Script) -> None:
        super().__init__(journal, script)
        self.tasks: dict[str, asyncio.Task[Any] | None] = {}
        self.logged_as: dict[str, Any] = {}
        """Action -> the action its log lines name."""

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.tasks[inputs["name"]] = asyncio.current_task()
        self.logged_as[inputs["name"]] = structlog.contextvars.get_contextvars().get("action")
        return await super().execute(ctx, inputs)


class TestSpareTask:
    """A task whose chain ended while other actions ran waits for the next action made
    ready, instead of a task being spawned for it; it ends with the phase."""

    SHAPE = {"r": [], "s": [], "a": ["r"], "b": ["a", "s"], "c": ["a", "s"]}
    """s ends early (its task waits as the spare); a makes b and c ready together."""

    async def _run(self, db: str, script: Script) -> tuple[RunResult, TaskNoting]:
        step = TaskNoting(Journal(), script)
        with anyio.fail_after(10):  # a spare task nobody ends would hang the run
            async with Engine(db, actions={"step": step}, clock=FakeClock()) as engine:
                result = await engine.run(make_saga(self.SHAPE))
        return result, step

    async def test_a_branch_made_ready_later_runs_in_the_spare_task(self, db: str) -> None:
        script = Script(sleep={"r": 0.02, "b": 0.05, "c": 0.05})
        result, step = await self._run(db, script)
        assert result.ok
        tasks = step.tasks
        assert tasks["r"] == tasks["a"] and {tasks["b"], tasks["c"]} == {tasks["a"], tasks["s"]}
        assert step.logged_as == {name: name for name in self.SHAPE}  # in every kind of task
        order = [(w, a) for w, a, _ in step.journal.entries]  # b and c still overlap
        assert order.index(("execute", "c")) < order.index(("done", "b"))
        assert order.index(("execute", "b")) < order.index(("done", "c"))

    async def test_a_failure_cancels_the_waiting_spare_task(self, db: str) -> None:
        result, _ = await self._run(db, Script(sleep={"r": 0.02}, fatal={"a"}))
        assert states(result) == {
            "r": "compensated",
            "s": "compensated",
            "a": "failed",
            "b": "skipped",
            "c": "skipped",
        }

    async def test_a_pause_ends_the_waiting_spare_task(self, db: str) -> None:
        script = Script(gates={"r": anyio.Event()}, entered={"r": anyio.Event()})
        step = TaskNoting(Journal(), script)
        with anyio.fail_after(10):
            async with Engine(db, actions={"step": step}, clock=FakeClock()) as engine:
                async with anyio.create_task_group() as group:
                    saga = make_saga(self.SHAPE)
                    group.start_soon(functools.partial(engine.run, saga, run_id="paused-1"))
                    await script.entered["r"].wait()
                    await anyio.sleep(0.02)  # s is done by now: its task is the spare
                    await engine.pause("paused-1")
                    script.gates["r"].set()
                result = await engine.status("paused-1")
        assert str(result.state) == "paused" and states(result)["a"] == "pending"


class TestSchemas:
    async def test_bad_input_is_not_retried_and_compensates(self, db: str) -> None:
        """An InputError fails the action at once, compensates, and marks the run bad input."""
        saga = make_saga({"a": [], "b": ["a"]}, attempts=3)
        result, journal, _ = await run(db, saga, Script(bad_input={"b"}))
        assert journal.names("execute") == ["a", "b"]
        assert result.state == "compensated" and result.bad_input and result.exit_code == 2
        assert result.code == "input_error" and result.failed_action == "b"
        assert states(result) == {"a": "compensated", "b": "failed"}

    async def test_inputs_are_checked_against_the_schema(self, db: str) -> None:
        """A `with:` that breaks the action's input schema fails as bad input before execute."""
        saga = CompiledSaga(
            name="s", version=1, actions={"a": ActionSpec("a", "step", {"name": 5})}
        )
        journal = Journal()
        async with Engine(db, actions={"step": Step(journal)}) as engine:
            result = await engine.run(saga)
        assert journal.entries == []
        assert result.exit_code == 2 and "a: input name" in (result.error or "")

    async def test_outputs_are_checked_against_the_schema(self, db: str) -> None:
        """Outputs that break the output schema fail the action fatally (not retried)."""

        class Liar(Action):
            output_schema = {"type": "object", "required": ["n"]}
            calls = 0

            async def execute(
                self, ctx: ActionContext, inputs: Mapping[str, Any]
            ) -> dict[str, Any]:
                Liar.calls += 1
                return {}

        saga = make_saga({"a": []}, attempts=3)
        async with Engine(db, actions={"step": Liar()}) as engine:
            result = await engine.run(saga)
        assert Liar.calls == 1 and result.state == "compensated" and result.code == "fatal"
        assert result.exit_code == 1


class TestCompensation:
    async def test_completed_actions_compensate_in_reverse_order(self, db: str) -> None:
        """d fails: c and b are compensated (concurrently) before a; d never is."""
        result, journal, _ = await run(db, make_saga(DIAMOND), Script(fatal={"d"}))
        assert result.state == "compensated" and result.exit_code == 1
        assert sorted(journal.names("compensated")) == ["a", "b", "c"]
        order = [(w, a) for w, a, _ in journal.entries]
        for later, earlier in [("a", "b"), ("a", "c")]:
            assert order.index(("compensated", earlier)) < order.index(("compensate", later))
        # independent compensations overlap: both start before either is done
        assert order.index(("compensate", "c")) < order.index(("compensated", "b"))
        assert order.index(("compensate", "b")) < order.index(("compensated", "c"))
        assert states(result) == {
            "a": "compensated",
            "b": "compensated",
            "c": "compensated",
            "d": "failed",
        }

    async def test_running_siblings_are_cancelled_not_compensated(self, db: str) -> None:
        """When b fails, c (still running) is cancelled and never compensated; e is skipped."""
        saga = make_saga({"a": [], "b": ["a"], "c": ["a"], "e": ["b", "c"]})
        result, journal, _ = await run(db, saga, Script(fatal={"b"}, hang={"c"}))
        assert journal.names("compensated") == ["a"]
        assert states(result) == {"a": "compensated", "b": "failed", "c": "failed", "e": "skipped"}
        assert result.actions["c"].error and "cancelled" in result.actions["c"].error

    async def test_irreversible_actions_are_left_alone(self, db: str) -> None:
        """An action marked compensate: false stays succeeded; the others are undone."""
        saga = make_saga({"a": [], "b": ["a"], "c": ["b"]}, irreversible=["b"])
        result, journal, _ = await run(db, saga, Script(fatal={"c"}))
        assert journal.names("compensated") == ["a"]
        assert states(result) == {"a": "compensated", "b": "succeeded", "c": "failed"}

    async def test_failing_compensation_leaves_the_run_stuck(self, db: str) -> None:
        """A compensation that keeps failing ends the run stuck with its error; a resume
        after the cause is fixed compensates the rest."""
        saga = make_saga(DIAMOND, attempts=2)
        script = Script(fatal={"d"}, comp_fail={"b": 99})
        journal = Journal()
        step = Step(journal, script)
        async with Engine(db, actions={"step": step}, clock=FakeClock()) as engine:
            result = await engine.run(saga, run_id="r")
            assert result.state == "stuck" and result.exit_code == 1
            assert result.error and "compensation of b failed" in result.error
            assert states(result)["b"] == "compensating" and states(result)["a"] == "succeeded"
            assert journal.names("compensate").count("b") == 2  # its retry policy: 2 attempts
            script.comp_fail.clear()
            resumed = await engine.resume("r")
        assert resumed.state == "compensated"
        assert states(resumed) == {
            "a": "compensated",
            "b": "compensated",
            "c": "compensated",
            "d": "failed",
        }

    async def test_progress_while_compensating_is_saved_and_the_run_ends(self, db: str) -> None:
        """A compensation reporting progress gets its reports saved by the flusher (no
        commit comes while it works) and the run still ends: the flusher runs beside the
        phases, never inside one."""

        class SlowUndo(Action):
            async def execute(
                self, ctx: ActionContext, inputs: Mapping[str, Any]
            ) -> dict[str, Any]:
                return {}

            async def compensate(
                self, ctx: ActionContext, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
            ) -> None:
                ctx.progress(0.5, "undoing")
                await anyio.sleep(0.3)  # long enough for the flusher to write on its own

        class Boom(Action):
            async def execute(
                self, ctx: ActionContext, inputs: Mapping[str, Any]
            ) -> dict[str, Any]:
                raise FatalError("boom")

        saga = CompiledSaga(
            name="undo",
            version=1,
            actions={
                "a": ActionSpec("a", "undo"),
                "b": ActionSpec("b", "boom", depends_on=frozenset({"a"})),
            },
        )
        actions = {"undo": SlowUndo(), "boom": Boom()}
        async with Engine(db, actions=actions) as engine:
            engine.options.progress_interval = 0.05
            with anyio.fail_after(10):
                result = await engine.run(saga, run_id="u")
            status = await engine.status("u")
        assert result.state == "compensated"
        assert status.progress["a"] == {"fraction": 0.5, "message": "undoing", "bytes": None}


class TestPivot:
    async def test_failure_after_pivot_retries_forward_then_sticks(self, db: str) -> None:
        """After the pivot succeeded, a failing action is retried, nothing is compensated,
        independent branches still finish, and the run ends stuck."""
        saga = make_saga(
            {"a": [], "p": ["a"], "x": ["p"], "y": ["p"], "z": ["x"]}, pivots=["p"], attempts=3
        )
        result, journal, _ = await run(db, saga, Script(flaky={"x": 99}))
        assert journal.names("compensate") == []
        assert journal.names("execute").count("x") == 3
        assert result.state == "stuck" and result.failed_action == "x"
        assert states(result) == {
            "a": "succeeded",
            "p": "succeeded",
            "x": "failed",
            "y": "succeeded",
            "z": "pending",
        }

    async def test_stuck_after_pivot_resumes_forward(self, db: str) -> None:
        """Resuming a run stuck after its pivot reruns the failed action and finishes."""
        saga = make_saga({"p": [], "x": ["p"], "z": ["x"]}, pivots=["p"])
        script = Script(fatal={"x"})
        async with Engine(db, actions={"step": Step(Journal(), script)}) as engine:
            assert (await engine.run(saga, run_id="r")).state == "stuck"
            script.fatal.clear()
            result = await engine.resume("r")
        assert result.ok and result.actions["x"].attempts == 2

    async def test_failure_before_pivot_compensates(self, db: str) -> None:
        """A failure while the pivot has not run yet compensates as usual."""
        saga = make_saga({"a": [], "b": ["a"], "p": ["b"]}, pivots=["p"])
        result, journal, _ = await run(db, saga, Script(fatal={"b"}))
        assert result.state == "compensated" and journal.names("compensated") == ["a"]
        assert states(result)["p"] == "skipped"


class TestTimeoutAndRetry:
    async def test_timeout_fails_the_attempt(self, db: str) -> None:
        """An action running past its timeout fails with a timeout error, on every attempt."""
        saga = make_saga({"a": []}, timeout=0.05, attempts=2)
        result, journal, _ = await run(db, saga, Script(hang={"a"}))
        assert journal.names("execute") == ["a", "a"]
        assert result.state == "compensated"
        assert result.actions["a"].error == "TimeoutError: timed out after 0.05s"

    async def test_retry_backs_off_exponentially_with_jitter(self, db: str) -> None:
        """A flaky action is retried after 1s then 2s (times the jitter factor) and succeeds."""
        clock = FakeClock()
        policy = RetryPolicy(attempts=4, backoff=1.0, max_backoff=30.0, jitter=0.5)
        saga = make_saga({"a": []}, retry={"a": policy})
        journal = Journal()
        step = Step(journal, Script(flaky={"a": 2}))
        events: list[Event] = []
        async with Engine(
            db,
            actions={"step": step},
            clock=clock,
            random_source=lambda: 0.5,
            on_event=events.append,
        ) as engine:
            result = await engine.run(saga, run_id="r")
        assert result.ok and result.actions["a"].attempts == 3
        assert clock.sleeps == [0.75, 1.5]
        assert [(n, attempt) for n, attempt, _ in step.contexts] == [("a", 1), ("a", 2), ("a", 3)]
        assert {key for _, _, key in step.contexts} == {"r/a"}
        retrying = [e.data["delay"] for e in events if e.kind == EventKind.ACTION_RETRYING]
        assert retrying == [0.75, 1.5]

    async def test_retries_run_out(self, db: str) -> None:
        """When every attempt fails the action fails for good and the saga compensates."""
        result, journal, _ = await run(
            db, make_saga({"a": [], "b": ["a"]}, attempts=3), Script(flaky={"b": 99})
        )
        assert journal.names("execute").count("b") == 3
        assert result.state == "compensated" and "b flaked" in (result.error or "")

    async def test_non_retryable_types_fail_at_once(self, db: str) -> None:
        """An error outside Action.retryable is not retried."""

        class Picky(Step):
            retryable = (ConnectionError,)

        journal = Journal()
        saga = make_saga({"a": []}, attempts=5)
        async with Engine(db, actions={"step": Picky(journal, Script(flaky={"a": 9}))}) as engine:
            result = await engine.run(saga)
        assert journal.names("execute") == ["a"] and result.state == "compensated"


class TestCancel:
    async def test_cancel_from_another_store_compensates(self, db: str) -> None:
        """A cancel requested through another engine compensates the run: it ends cancelled."""
        saga = make_saga({"a": [], "b": ["a"]})
        journal = Journal()
        script = Script(hang={"b"}, entered={"b": anyio.Event()})
        results: list[RunResult] = []
        step = Step(journal, script)
        async with (
            Engine(db, actions={"step": step}, cancel_poll=0.01) as engine,
            anyio.create_task_group() as group,
        ):

            async def drive() -> None:
                results.append(await engine.run(saga, run_id="r"))

            group.start_soon(drive)
            await script.entered["b"].wait()
            async with Engine(db, actions={"step": Step(Journal())}) as other:
                busy = await other.cancel("r")
                # The owner compensates it: polling every 10 ms, it may have begun already,
                # or (on a loaded machine) finished before `cancel` read the run back.
                assert busy.state in ("running", "compensating", "cancelled")
        assert results[0].state == "cancelled" and results[0].exit_code == 1
        assert journal.names("compensated") == ["a"]
        assert states(results[0]) == {"a": "compensated", "b": "failed"}

    async def test_cancel_of_a_queued_run_skips_everything(self, db: str) -> None:
        """Cancelling a run nobody started ends it cancelled with every action skipped."""
        async with Engine(db, actions={"step": Step(Journal())}) as engine:
            run_id = await engine.start(make_saga({"a": [], "b": ["a"]}))
            result = await engine.cancel(run_id)
        assert result.state == "cancelled" and states(result) == {"a": "skipped", "b": "skipped"}

    async def test_cancel_of_a_finished_run_is_refused(self, db: str) -> None:
        """cancel of a finished run is bad input."""
        from sagactl.engine.errors import InputError

        async with Engine(db, actions={"step": Step(Journal())}) as engine:
            result = await engine.run(make_saga({"a": []}))
            with pytest.raises(InputError):
                await engine.cancel(result.run_id)
