"""The testing kit itself: each check passes on a correct action and fails on a broken one."""

from __future__ import annotations

import pytest
from sagactl.engine import (
    JSON,
    Action,
    ActionContext,
    CompiledSaga,
    Inputs,
    Outputs,
    Transaction,
)
from sagactl.engine.errors import FatalError
from sagactl.engine.states import ActionState, RunState
from sagactl.engine.testing import (
    CompensationNotUndone,
    CrashRehearsalFailed,
    action_spec,
    check_compensation,
    rehearse_crashes,
    run_action,
    saga_of,
)
from sagactl.engine.testing.probes import probe_db
from sagactl.engine.testing.pytest_plugin import Kit

pytestmark = pytest.mark.anyio

TABLE = "CREATE TABLE IF NOT EXISTS kit_things (name TEXT PRIMARY KEY)"


async def things(tx: Transaction) -> list[str]:
    """The probe: the names in kit_things."""
    await tx.execute(TABLE)
    return [str(row[0]) for row in await tx.fetchall("SELECT name FROM kit_things ORDER BY 1")]


class AddThing(Action):
    """Adds a row in the action's transaction: exactly once, and undone by compensate."""

    input_schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    output_schema = {"type": "object", "properties": {"added": {"type": "string"}}}

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        ctx.progress(0.5, "adding")
        async with ctx.transaction() as tx:
            await tx.execute(TABLE)
            await tx.execute("INSERT INTO kit_things (name) VALUES (?)", (inputs["name"],))
        return {"added": inputs["name"]}

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        async with ctx.transaction() as tx:
            await tx.execute("DELETE FROM kit_things WHERE name = ?", (inputs["name"],))


class ForgetfulUndo(AddThing):
    """Claims to be reversible, undoes nothing."""

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        return None


class NoEffect(AddThing):
    """Does nothing the probe can see."""

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {"added": inputs["name"]}


class Irreversible(Action):
    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {}


class Failing(Action):
    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        raise FatalError("no way")


class WrongOutputs(AddThing):
    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {"added": 42}


class Counter(Action):
    """Counts its executions in an outside system (a list): not idempotent on a crash
    between its execution and its completion record."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        self.calls.append(ctx.idempotency_key)
        return {}


class KeyedCounter(Counter):
    """The same system, used with the idempotency key: a repeat changes nothing."""

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        if ctx.idempotency_key not in self.calls:
            self.calls.append(ctx.idempotency_key)
        return {}


class TestRunAction:
    async def test_runs_under_a_real_context_and_commits_its_transaction(self) -> None:
        run = await run_action(AddThing(), {"name": "a"}, name="add")
        assert run.ok and run.outputs == {"added": "a"}
        assert run.result.state is RunState.SUCCEEDED
        kinds = [e.kind.value for e in run.events if e.action == "add"]
        assert kinds[0] == "action_started" and "action_succeeded" in kinds

    async def test_the_transaction_is_in_the_kept_database(self, tmp_path: object) -> None:
        kit = Kit(
            db=f"sqlite://{tmp_path}/kept.db", deps=__import__("sagactl").engine.Dependencies()
        )
        await kit.run_action(AddThing(), {"name": "kept"})

        assert await probe_db(kit.db, things) == ["kept"]

    async def test_a_failure_is_reported_not_raised(self) -> None:
        run = await run_action(Failing())
        assert not run.ok and run.state is ActionState.FAILED
        assert run.error is not None and "no way" in run.error
        with pytest.raises(AssertionError, match="did not succeed"):
            _ = run.outputs

    async def test_outputs_are_checked_against_the_schema(self) -> None:
        run = await run_action(WrongOutputs(), {"name": "a"})
        assert run.state is ActionState.FAILED
        assert run.error is not None and "42" in run.error


class TestCheckCompensation:
    async def test_passes_when_compensation_undoes_the_effect(self) -> None:
        check = await check_compensation(AddThing(), {"name": "a"}, things)
        assert (check.before, check.during, check.after) == ([], ["a"], [])

    async def test_fails_when_compensation_leaves_the_effect(self) -> None:
        with pytest.raises(CompensationNotUndone, match="did not undo"):
            await check_compensation(ForgetfulUndo(), {"name": "a"}, things)

    async def test_fails_when_the_probe_sees_no_effect(self) -> None:
        with pytest.raises(CompensationNotUndone, match="no effect the probe can see"):
            await check_compensation(NoEffect(), {"name": "a"}, things)
        check = await check_compensation(NoEffect(), {"name": "a"}, things, expect_effect=False)
        assert check.after == []

    async def test_refuses_an_irreversible_action(self) -> None:
        with pytest.raises(CompensationNotUndone, match="irreversible"):
            await check_compensation(Irreversible(), {}, things)

    async def test_fails_when_the_action_itself_fails(self) -> None:
        class FailingAdd(AddThing):
            async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
                raise FatalError("broken")

        with pytest.raises(CompensationNotUndone, match="broken"):
            await check_compensation(FailingAdd(), {"name": "a"}, things)


def two_step_saga() -> CompiledSaga:
    return saga_of(
        action_spec("first", {"name": "one"}, uses="kit.add"),
        action_spec("count", uses="kit.count", needs=("first",)),
    )


class TestRehearseCrashes:
    async def test_an_idempotent_saga_passes_at_every_write(self) -> None:
        calls: list[str] = []

        async def reset() -> None:
            calls.clear()

        async def probe(tx: Transaction) -> JSON:
            return {"things": await things(tx), "calls": list(calls)}

        actions = {"kit.add": AddThing(), "kit.count": KeyedCounter(calls)}
        rehearsal = await rehearse_crashes(two_step_saga(), actions, probe=probe, reset=reset)
        assert rehearsal.writes >= 3  # created; first committed; count succeeded (and finished)
        assert rehearsal.expected.state == "succeeded"
        assert rehearsal.expected.effect == {"things": ["one"], "calls": ["rehearsal/count"]}

    async def test_catches_a_non_idempotent_action(self) -> None:
        calls: list[str] = []

        async def reset() -> None:
            calls.clear()

        async def probe(tx: Transaction) -> JSON:
            return list(calls)

        actions = {"kit.add": AddThing(), "kit.count": Counter(calls)}
        with pytest.raises(CrashRehearsalFailed, match="ended differently") as caught:
            await rehearse_crashes(two_step_saga(), actions, probe=probe, reset=reset)
        assert "'rehearsal/count', 'rehearsal/count'" in str(caught.value)

    async def test_a_failing_saga_is_rehearsed_through_its_compensation(self) -> None:
        saga = saga_of(
            action_spec("first", {"name": "one"}, uses="kit.add"),
            action_spec("boom", uses="kit.fail", needs=("first",)),
        )
        actions = {"kit.add": AddThing(), "kit.fail": Failing()}
        rehearsal = await rehearse_crashes(saga, actions, probe=things)
        assert rehearsal.expected.state == "compensated"
        assert rehearsal.expected.effect == []
        assert rehearsal.expected.actions["first"][0] is ActionState.COMPENSATED


COUNT: dict[str, Action] = {"kit.count": KeyedCounter([])}


class TestFixtures:
    async def test_each_check_is_one_line(self, sagactl_kit: Kit) -> None:
        assert (await sagactl_kit.run_action(AddThing(), {"name": "x"})).outputs == {"added": "x"}
        await sagactl_kit.check_compensation(AddThing(), {"name": "y"}, things)
        await sagactl_kit.rehearse_crashes(
            two_step_saga(), {"kit.add": AddThing(), "kit.count": KeyedCounter([])}
        )
        assert sagactl_kit.db.endswith("sagactl-runs.db")
