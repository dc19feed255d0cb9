"""Issue 13 items 3-4 through the Python API: retry of a stuck run, fork, pause and unpause.

Each test drives real engines over a real SQLite file; an operator's call comes from a
second engine (another store, as another process would be) unless the test is about the
engine that holds the run.
"""

from __future__ import annotations

import os

import anyio
import pytest
from sagactl.engine import Engine
from sagactl.engine.bulk import bulk
from sagactl.engine.errors import InputError
from sagactl.engine.events import Event, EventKind
from sagactl.engine.model import ActionSpec, CompiledSaga, RetryPolicy
from sagactl.engine.states import (
    RUN_TRANSITIONS,
    InvalidTransition,
    RunState,
    check_run,
)

from .sagas import Journal, Script, Step, make_saga

pytestmark = pytest.mark.anyio
R = RunState


def kinds(records: list[Event]) -> list[str]:
    return [str(r.kind) for r in records]


def operator_records(records: list[Event], operation: str) -> list[Event]:
    return [r for r in records if r.data.get("operation") == operation]


class TestStates:
    def test_paused_moves(self) -> None:
        """A run is paused from queued or running only; it leaves to running (unpause),
        compensating (cancel) or abandoned, never straight to an outcome."""
        into = {old for old, new in RUN_TRANSITIONS if new is R.PAUSED}
        out = {new for old, new in RUN_TRANSITIONS if old is R.PAUSED}
        assert into == {R.QUEUED, R.RUNNING}
        assert out == {R.RUNNING, R.COMPENSATING, R.ABANDONED}
        for old, new in [
            (R.PAUSED, R.SUCCEEDED),
            (R.PAUSED, R.STUCK),
            (R.PAUSED, R.CANCELLED),
            (R.COMPENSATING, R.PAUSED),
            (R.STUCK, R.PAUSED),
            (R.SUCCEEDED, R.PAUSED),
        ]:
            with pytest.raises(InvalidTransition):
                check_run(old, new)


class TestRetry:
    async def test_a_run_stuck_forward_continues_once_the_fault_is_gone(self, db: str) -> None:
        """After its pivot, c fails (an injected fault) and the run is stuck; retried by an
        engine without the fault, it succeeds: a and b are not run again, c gets attempt 2
        under the same idempotency key, and the log says who retried it."""
        saga = make_saga({"a": [], "b": ["a"], "c": ["b"]}, pivots=["b"])
        journal, first = Journal(), Script()
        async with Engine(db, actions={"step": Step(journal, first)}, faults="c:error") as broken:
            stuck = await broken.run(saga, run_id="r")
        assert stuck.state is R.STUCK and stuck.failed_action == "c"
        step = Step(journal)
        async with Engine(db, actions={"step": step}) as fixed:
            result = await fixed.retry("r")
            records = await fixed.log("r")
        assert result.state is R.SUCCEEDED
        assert journal.names("execute") == ["a", "b", "c"]  # the fault struck before c ran
        assert step.contexts == [("c", 2, "r/c")]
        assert result.actions["c"].attempts == 2
        (retried,) = operator_records(records, "retry")
        assert retried.kind is EventKind.RUN_RESUMED
        assert retried.data["from_state"] == "stuck"
        assert "injected error at c" in retried.data["stuck_error"]
        assert retried.data["by"]["pid"] == os.getpid()
        assert retried.data["by"]["user"] and retried.data["by"]["host"]
        assert retried.at > 0

    async def test_a_run_stuck_compensating_finishes_compensating(self, db: str) -> None:
        """b fails, a's undo fails: stuck compensating. Once the undo works again, retry
        compensates a (a second compensation attempt) and nothing runs forward again."""
        saga = make_saga({"a": [], "b": ["a"]})
        journal = Journal()
        script = Script(fatal={"b"}, comp_fail={"a": 1})
        async with Engine(db, actions={"step": Step(journal, script)}) as engine:
            stuck = await engine.run(saga, run_id="r")
        assert stuck.state is R.STUCK and script.comp_fail == {"a": 0}
        async with Engine(db, actions={"step": Step(journal, script)}) as other:
            result = await other.retry("r")
        assert result.state is R.COMPENSATED
        assert journal.names("execute") == ["a", "b"]
        assert journal.names("compensate") == ["a", "a"]
        assert journal.names("compensated") == ["a"]
        assert result.actions["a"].compensation_attempts == 2

    async def test_retry_refuses_a_run_that_is_not_stuck(self, db: str) -> None:
        saga = make_saga({"a": []})
        async with Engine(db, actions={"step": Step(Journal())}) as engine:
            await engine.run(saga, run_id="r")
            before = await engine.log("r")
            with pytest.raises(InputError, match="run r is succeeded, not stuck"):
                await engine.retry("r")
            assert await engine.log("r") == before


def saga_with_input() -> CompiledSaga:
    """One action whose `name` input is the saga's `tag` input."""
    spec = ActionSpec(
        name="a",
        uses="step",
        with_={"name": "${{ inputs.tag }}"},
        retry=RetryPolicy(attempts=1),
    )
    tag = {"type": "string", "pattern": "^[a-z]+$"}
    return CompiledSaga(name="tagged", version=1, actions={"a": spec}, inputs={"tag": tag})


class TestFork:
    async def test_fork_runs_the_pinned_definition_with_an_edited_input(self, db: str) -> None:
        journal = Journal()
        async with Engine(db, actions={"step": Step(journal)}) as engine:
            first = await engine.run(saga_with_input(), {"tag": "one"}, run_id="r1")
            forked = await engine.fork("r1", {"tag": "two"}, new_run_id="r2")
            source, copy = await engine.store.get_run("r1"), await engine.store.get_run("r2")
            records = await engine.log("r2")
        assert first.ok and forked.ok
        assert journal.names("execute") == ["one", "two"]
        assert copy.definition_hash == source.definition_hash
        assert copy.inputs == {"tag": "two"} and source.inputs == {"tag": "one"}
        assert kinds(records)[:3] == ["run_created", "run_forked", "run_started"]
        link = records[1].data
        assert link["from_run"] == "r1" and link["changed"] == ["tag"]
        assert link["by"]["pid"] == os.getpid()

    async def test_fork_keeps_the_inputs_not_given(self, db: str) -> None:
        async with Engine(db, actions={"step": Step(Journal())}) as engine:
            await engine.run(saga_with_input(), {"tag": "one"}, run_id="r1")
            run_id = await engine.start_fork("r1", new_run_id="r2")
            queued = await engine.store.get_run(run_id)
            records = await engine.log(run_id)
        assert queued.state is R.QUEUED and queued.owner is None
        assert queued.inputs == {"tag": "one"}
        assert records[1].data["changed"] == []

    @pytest.mark.parametrize(
        ("inputs", "says"),
        [
            ({"tag": "NOT-LOWER"}, "input tag: 'NOT-LOWER' does not match"),
            ({"x": 1}, "no input 'x'"),
        ],
    )
    async def test_a_bad_edit_creates_nothing(
        self, db: str, inputs: dict[str, object], says: str
    ) -> None:
        async with Engine(db, actions={"step": Step(Journal())}) as engine:
            await engine.run(saga_with_input(), {"tag": "one"}, run_id="r1")
            with pytest.raises(InputError, match=says):
                await engine.fork("r1", inputs)  # type: ignore[arg-type]
            runs = await engine.list_runs()
        assert [r.run_id for r in runs] == ["r1"]


class TestPause:
    async def test_running_actions_finish_nothing_new_starts_unpause_completes(
        self, db: str
    ) -> None:
        """a and c run when another engine pauses the run: both finish, b and d (their
        dependents) do not start, the owner's `run` returns `paused`; unpause runs b and d
        only, once each."""
        saga = make_saga({"a": [], "c": [], "b": ["a"], "d": ["c"]})
        journal = Journal()
        gates = {"a": anyio.Event(), "c": anyio.Event()}
        entered = {"a": anyio.Event(), "c": anyio.Event()}
        pausing = anyio.Event()
        heard: list[Event] = []

        def listen(event: Event) -> None:
            heard.append(event)
            if event.kind is EventKind.RUN_PAUSING:
                pausing.set()

        script = Script(gates=gates, entered=entered)
        results = []
        async with (
            Engine(
                db, actions={"step": Step(journal, script)}, cancel_poll=0.01, on_event=listen
            ) as owner,
            anyio.create_task_group() as group,
        ):

            async def drive() -> None:
                results.append(await owner.run(saga, run_id="r"))

            group.start_soon(drive)
            await entered["a"].wait()
            await entered["c"].wait()
            async with Engine(db, actions={"step": Step(journal)}) as operator:
                asked = await operator.pause("r")
            assert asked.state is R.RUNNING  # its owner pauses it
            await pausing.wait()
            gates["a"].set()
            gates["c"].set()
        (paused,) = results
        assert paused.state is R.PAUSED and paused.exit_code == 0
        assert sorted(journal.names("done")) == ["a", "c"]
        pausing_event = next(e for e in heard if e.kind is EventKind.RUN_PAUSING)
        assert sorted(pausing_event.data["running"]) == ["a", "c"]
        async with Engine(db, actions={"step": Step(journal)}) as other:
            record = await other.store.get_run("r")
            assert record.owner is None  # a paused run is held by nobody
            result = await other.unpause("r")
            records = await other.log("r")
        assert result.state is R.SUCCEEDED
        assert sorted(journal.names("execute")) == ["a", "b", "c", "d"]
        assert kinds(records).count("run_paused") == 1
        (unpaused,) = operator_records(records, "unpause")
        assert unpaused.data["from_state"] == "paused"

    async def test_a_paused_run_still_compensates_when_cancelled(self, db: str) -> None:
        saga = make_saga({"a": [], "b": ["a"], "c": ["b"]})
        journal = Journal()
        script = Script(gates={"b": anyio.Event()}, entered={"b": anyio.Event()})
        results = []
        async with Engine(db, actions={"step": Step(journal, script)}) as engine:
            async with anyio.create_task_group() as group:

                async def drive() -> None:
                    results.append(await engine.run(saga, run_id="r"))

                group.start_soon(drive)
                await script.entered["b"].wait()
                await engine.pause("r")  # the engine holding it: at once
                script.gates["b"].set()
            assert results[0].state is R.PAUSED
            result = await engine.cancel("r")
        assert result.state is R.CANCELLED
        assert journal.names("execute") == ["a", "b"]
        assert journal.names("compensated") == ["b", "a"]

    async def test_a_queued_run_pauses_at_once_and_nobody_resumes_it(self, db: str) -> None:
        saga = make_saga({"a": []})
        journal = Journal()
        async with Engine(db, actions={"step": Step(journal)}) as engine:
            run_id = await engine.start(saga)
            paused = await engine.pause(run_id)
            assert paused.state is R.PAUSED
            assert await engine.resume_all(include_stuck=True) == []
            with pytest.raises(InputError, match="is paused: continue it with unpause"):
                await engine.resume(run_id)
            records = await engine.log(run_id)
            assert records[-1].kind is EventKind.RUN_PAUSED
            assert records[-1].data["by"]["pid"] == os.getpid()
            assert (await engine.pause(run_id)).state is R.PAUSED  # again: nothing new
            assert await engine.log(run_id) == records
            result = await engine.unpause(run_id)
        assert result.ok and journal.names("execute") == ["a"]

    async def test_a_retryable_failure_while_pausing_waits_for_unpause(self, db: str) -> None:
        """a fails retryably after the pause: no new attempt until unpause, which makes it."""
        saga = make_saga({"a": []}, attempts=3)
        step = Step(Journal(), Script(flaky={"a": 1}, gates={"a": anyio.Event()}))
        step.script.entered["a"] = anyio.Event()
        results = []
        async with Engine(db, actions={"step": step}) as engine:
            async with anyio.create_task_group() as group:

                async def drive() -> None:
                    results.append(await engine.run(saga, run_id="r"))

                group.start_soon(drive)
                await step.script.entered["a"].wait()
                await engine.pause("r")
                step.script.gates["a"].set()
            assert results[0].state is R.PAUSED
            assert results[0].actions["a"].attempts == 1
            result = await engine.unpause("r")
        assert result.ok
        assert [(name, attempt) for name, attempt, _ in step.contexts] == [("a", 1), ("a", 2)]

    @pytest.mark.parametrize(
        ("script", "pivots", "state"),
        [(Script(), (), "succeeded"), (Script(fatal={"b"}, comp_fail={"a": 9}), (), "stuck")],
    )
    async def test_pause_refuses_runs_that_do_not_run(
        self, db: str, script: Script, pivots: tuple[str, ...], state: str
    ) -> None:
        saga = make_saga({"a": [], "b": ["a"]}, pivots=pivots)
        async with Engine(db, actions={"step": Step(Journal(), script)}) as engine:
            await engine.run(saga, run_id="r")
            with pytest.raises(InputError, match=f"run r is {state}: only a queued or running"):
                await engine.pause("r")

    async def test_cancel_of_a_paused_run_past_its_pivot_is_refused(self, db: str) -> None:
        saga = make_saga({"a": [], "b": ["a"], "c": ["b"]}, pivots=["a"])
        script = Script(gates={"b": anyio.Event()}, entered={"b": anyio.Event()})
        results = []
        async with Engine(db, actions={"step": Step(Journal(), script)}) as engine:
            async with anyio.create_task_group() as group:

                async def drive() -> None:
                    results.append(await engine.run(saga, run_id="r"))

                group.start_soon(drive)
                await script.entered["b"].wait()
                await engine.pause("r")
                script.gates["b"].set()
            assert results[0].state is R.PAUSED
            with pytest.raises(InputError, match="passed its pivot a"):
                await engine.cancel("r")
            assert (await engine.status("r")).state is R.PAUSED


class TestBulk:
    async def test_bulk_pause_then_cancel_by_filter(self, db: str) -> None:
        """`Engine.bulk` pauses the queued runs of one saga (not the other saga's, not the
        finished ones), then cancels the paused ones: every one ends cancelled."""
        one, other = make_saga({"a": []}, name="one"), make_saga({"a": []}, name="other")
        async with Engine(db, actions={"step": Step(Journal())}) as engine:
            queued = [await engine.start(one) for _ in range(5)]
            await engine.run(one, run_id="done")
            spared = await engine.start(other)
            seen: list[tuple[str, str]] = []
            report = await bulk(
                engine,
                "pause",
                "saga=one,state=queued|succeeded",
                on_result=lambda r, s: seen.append((r, s)),
            )
            assert dict(report.states) == {"paused": 5} and report.refused == 1
            assert report.refusals == [
                "done: run done is succeeded: only a queued or running run is paused"
            ]
            assert sorted(r for r, s in seen if s == "paused") == sorted(queued)
            cancelled = await bulk(engine, "cancel", "state=paused")
            assert dict(cancelled.states) == {"cancelled": 5} and cancelled.refused == 0
            assert (await engine.status(spared)).state is R.QUEUED
            with pytest.raises(InputError, match="no bulk operation 'explode'"):
                await bulk(engine, "explode", "state=paused")
            with pytest.raises(InputError, match="unknown key 'colour'"):
                await bulk(engine, "cancel", "colour=red")


async def test_running_a_paused_run_again_returns_it_as_it_stands(db: str) -> None:
    """`run` with the id of a paused run is idempotent: the run is returned paused (exit
    0), nothing runs, and only `unpause` continues it."""
    saga = make_saga({"a": []})
    journal = Journal()
    async with Engine(db, actions={"step": Step(journal)}) as engine:
        await engine.start(saga, run_id="r")
        await engine.pause("r")
        again = await engine.run(saga, run_id="r")
        assert again.state is R.PAUSED and again.exit_code == 0
        assert journal.names("execute") == []
        assert (await engine.unpause("r")).ok
