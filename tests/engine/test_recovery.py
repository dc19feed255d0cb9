"""Recovery: crashes at log writes, resume from the pin, checkpoints, transactions, owners."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import closing
from typing import Any

import pytest
from sagactl.engine import Action, ActionContext
from sagactl.engine.api import Engine, RunResult
from sagactl.engine.errors import RunNotFound
from sagactl.engine.new_run import pin_new_run
from sagactl.engine.store import Migration, RunBusy, RunExists, open_store, register_migrations
from sagactl.engine.testing import CrashingStore, SimulatedCrash

from .sagas import FakeClock, Journal, Script, Step, make_saga

pytestmark = pytest.mark.anyio

register_migrations(
    "runtimetest",
    [
        Migration(
            1,
            {
                "sqlite": "CREATE TABLE ledger (key TEXT NOT NULL, amount INTEGER);",
                "postgresql": "CREATE TABLE ledger (key TEXT NOT NULL, amount BIGINT);",
            },
        )
    ],
)

CHAIN = {"a": [], "b": ["a"], "c": ["b"]}


async def crash_then_resume(
    db: str, saga: Any, crash_at: int, step_factory: Any, run_id: str = "r"
) -> tuple[RunResult, bool]:
    """Run until the store dies at write `crash_at`, then resume with a fresh store."""
    inner = open_store(db)
    crashing = CrashingStore(inner, crash_at)
    crashed = False
    await inner.open()
    try:
        async with Engine(crashing, actions={"step": step_factory()}, clock=FakeClock()) as engine:
            await engine.run(saga, run_id=run_id)
    except SimulatedCrash:
        crashed = True
    except BaseExceptionGroup as group:
        assert group.subgroup(SimulatedCrash) is not None, group
        crashed = True
    finally:
        await inner.close()
    async with Engine(db, actions={"step": step_factory()}, clock=FakeClock()) as engine:
        try:
            return await engine.resume(run_id), crashed
        except RunNotFound:
            return await engine.run(saga, run_id=run_id), crashed


class TestResume:
    async def test_completed_actions_never_rerun(self, db: str) -> None:
        """A crash right after b's completion commit: resume runs only c."""
        journal = Journal()
        # writes: 1 create+start+intent a, 2 done a+intent b, 3 done b+intent c, 4 done c
        result, crashed = await crash_then_resume(db, make_saga(CHAIN), 4, lambda: Step(journal))
        assert crashed and result.ok
        assert journal.names("execute") == ["a", "b", "c", "c"]
        assert journal.names("done") == ["a", "b", "c", "c"]

    async def test_interrupted_action_reruns_with_same_key(self, db: str) -> None:
        """An action whose completion was never logged reruns: same key, next attempt."""
        journal = Journal()
        steps: list[Step] = []

        def factory() -> Step:
            steps.append(Step(journal))
            return steps[-1]

        result, _ = await crash_then_resume(db, make_saga(CHAIN), 3, factory)
        assert result.ok
        assert steps[0].contexts[-1] == ("b", 1, "r/b")
        assert steps[1].contexts[0] == ("b", 2, "r/b")
        assert result.actions["b"].attempts == 2 and result.actions["a"].attempts == 1

    async def test_compensating_run_keeps_compensating(self, db: str) -> None:
        """A crash during compensation: resume finishes compensating, forward never reruns."""
        journal = Journal()
        saga = make_saga(CHAIN)
        # 1 create+start, 2 a done, 3 b done, 4 c failed+compensating+comp b, 5 b undone
        result, _ = await crash_then_resume(db, saga, 5, lambda: Step(journal, Script(fatal={"c"})))
        assert result.state == "compensated"
        assert journal.names("execute") == ["a", "b", "c"]
        assert journal.names("compensated") == ["b", "b", "a"]

    async def test_a_live_owner_keeps_its_run(self, db: str) -> None:
        """resume of a run held by a live engine raises RunBusy; resume_all skips it."""
        async with Engine(db, actions={"step": Step(Journal())}) as owner:
            store = owner.store
            new = pin_new_run(make_saga(CHAIN), None, owner.provider, run_id="r")
            created = await store.create_run(new, claim=True)
            assert created.claim is not None
            async with Engine(db, actions={"step": Step(Journal())}) as other:
                with pytest.raises(RunBusy):
                    await other.resume("r")
                assert await other.resume_all() == []
            await store.release(created.claim)

    async def test_resume_all_takes_every_orphan(self, db: str) -> None:
        """Runs left queued or running by dead owners all finish under resume_all."""
        journal = Journal()
        async with Engine(db, actions={"step": Step(journal)}) as engine:
            for i in range(3):
                await engine.start(make_saga(CHAIN), run_id=f"q{i}")
        await crash_then_resume(db, make_saga(CHAIN), 3, lambda: Step(journal), run_id="dead")
        async with Engine(db, actions={"step": Step(journal)}) as engine:
            results = await engine.resume_all()
        assert sorted(r.run_id for r in results) == ["q0", "q1", "q2"]
        assert all(r.ok for r in results)

    async def test_resume_uses_the_pinned_definition(self, db: str) -> None:
        """A run started from definition v1 resumes as v1 even when v2 is what exists now."""
        journal = Journal()
        v1 = make_saga(CHAIN)
        await crash_then_resume(db, v1, 3, lambda: Step(Journal()), run_id="keep")
        # crash_then_resume resumed it already; start another and only crash it
        inner = open_store(db)
        await inner.open()
        try:
            async with Engine(CrashingStore(inner, 3), actions={"step": Step(journal)}) as e:
                await e.run(v1, run_id="pinned")
        except BaseException:
            pass
        finally:
            await inner.close()
        v2 = make_saga({**CHAIN, "extra": ["c"]})
        async with Engine(db, actions={"step": Step(journal)}) as engine:
            with pytest.raises(RunExists):
                await engine.run(v2, run_id="pinned")
            result = await engine.resume("pinned")
        assert result.ok and set(result.actions) == {"a", "b", "c"}
        assert "extra" not in journal.names("execute")

    async def test_same_run_id_is_idempotent(self, db: str) -> None:
        """Running a finished run id again returns it as it stands, executing nothing."""
        journal = Journal()
        async with Engine(db, actions={"step": Step(journal)}) as engine:
            first = await engine.run(make_saga(CHAIN), run_id="once")
            again = await engine.run(make_saga(CHAIN), run_id="once")
        assert first.ok and again.ok and journal.names("execute") == ["a", "b", "c"]


class Counter(Action):
    """Checkpoints its progress, writes a ledger row in its transaction, may fail."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen_checkpoints: list[Any] = []

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.seen_checkpoints.append(ctx.last_checkpoint)
        await ctx.checkpoint({"step": (ctx.last_checkpoint or {}).get("step", 0) + 1})
        async with ctx.transaction() as tx:
            await tx.execute("INSERT INTO ledger VALUES (?, ?)", (ctx.idempotency_key, 10))
            rows = await tx.fetchall("SELECT key FROM ledger WHERE key = ?", (ctx.idempotency_key,))
            assert rows == [(ctx.idempotency_key,)]
        if self.fail:
            raise RuntimeError("after writing")
        return {}


async def ledger(db: str) -> list[tuple[Any, ...]]:
    """The ledger table as the database file holds it, read with plain sqlite3."""
    with closing(sqlite3.connect(db.removeprefix("sqlite://"))) as conn:
        return conn.execute("SELECT key, amount FROM ledger ORDER BY key").fetchall()


class TestCheckpointsAndTransactions:
    async def test_checkpoint_comes_back_on_rerun(self, db: str) -> None:
        """After a crash, the rerun sees what the interrupted attempt checkpointed."""
        actions: list[Counter] = []

        def factory() -> Counter:
            actions.append(Counter())
            return actions[-1]

        saga = make_saga({"a": []})
        # 1 create+start, 2 checkpoint, 3 completion (crash: transaction rolled back)
        result, _ = await crash_then_resume(db, saga, 3, factory)
        assert result.ok
        assert actions[0].seen_checkpoints == [None]
        assert actions[1].seen_checkpoints == [{"step": 1}]
        async with open_store(db) as store:
            assert await store.checkpoints("r") == {"a": {"step": 2}}

    async def test_transaction_commits_exactly_once_across_a_crash(self, db: str) -> None:
        """The ledger write of a crashed attempt is rolled back; the rerun's commits once."""
        result, _ = await crash_then_resume(db, make_saga({"a": []}), 3, Counter)
        assert result.ok
        assert await ledger(db) == [("r/a", 10)]

    async def test_failed_action_writes_are_rolled_back(self, db: str) -> None:
        """An action that fails after writing in its transaction leaves no row."""
        saga = make_saga({"a": []}, attempts=2)
        async with Engine(db, actions={"step": Counter(fail=True)}, clock=FakeClock()) as engine:
            result = await engine.run(saga, run_id="r")
        assert result.state == "compensated" and result.actions["a"].attempts == 2
        assert await ledger(db) == []

    async def test_checkpoint_inside_a_transaction_is_refused(self, db: str) -> None:
        """checkpoint() while transaction() is open raises instead of deadlocking."""

        class Bad(Action):
            async def execute(
                self, ctx: ActionContext, inputs: Mapping[str, Any]
            ) -> dict[str, Any]:
                async with ctx.transaction():
                    await ctx.checkpoint(1)
                return {}

        async with Engine(db, actions={"step": Bad()}) as engine:
            result = await engine.run(make_saga({"a": []}))
        assert "checkpoint() cannot be called" in (result.error or "")


class TestAbandonAndPrune:
    async def test_abandon_a_stuck_run(self, db: str) -> None:
        """abandon ends a stuck run abandoned, pending actions skipped."""
        saga = make_saga({"p": [], "x": ["p"], "z": ["x"]}, pivots=["p"])
        async with Engine(db, actions={"step": Step(Journal(), Script(fatal={"x"}))}) as engine:
            assert (await engine.run(saga, run_id="r")).state == "stuck"
            result = await engine.abandon("r")
            assert result.state == "abandoned" and result.actions["z"].state == "skipped"
            assert await engine.prune(0) == 1
            with pytest.raises(RunNotFound):
                await engine.status("r")
