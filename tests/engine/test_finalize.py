"""`Action.finalize`: once per run for the actions that started, whatever the outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from sagactl.engine import ActionContext
from sagactl.engine.api import Engine, RunResult
from sagactl.engine.errors import RunNotFound
from sagactl.engine.events import Event, EventKind
from sagactl.engine.model import CompiledSaga
from sagactl.engine.states import InvalidTransition, RunState, fold
from sagactl.engine.store import open_store
from sagactl.engine.testing import CrashingStore, SimulatedCrash

from .sagas import FakeClock, Journal, Script, Step, make_saga

pytestmark = pytest.mark.anyio

CHAIN = {"a": [], "b": ["a"], "c": ["b"]}


class Tidy(Step):
    """A Step that journals its `finalize`; those named in `fail_finalize` raise there."""

    def __init__(
        self, journal: Journal, script: Script | None = None, fail_finalize: set[str] = frozenset()
    ) -> None:
        super().__init__(journal, script)
        self.fail_finalize = set(fail_finalize)

    async def finalize(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> None:
        name = inputs["name"]
        self.journal.add("finalize", name)
        await anyio.lowlevel.checkpoint()
        if name in self.fail_finalize:
            raise RuntimeError(f"cannot tidy {name}")


async def _run(db: Any, saga: CompiledSaga, action: Step, run_id: str = "r") -> RunResult:
    async with Engine(db, actions={"step": action}, clock=FakeClock(), max_parallel=1) as engine:
        return await engine.run(saga, run_id=run_id)


def finalized(log: list[Event]) -> list[str]:
    return [r.action or "" for r in log if r.kind is EventKind.ACTION_FINALIZED]


class TestFinalize:
    async def test_each_action_is_finalized_once_after_success(self, db: str) -> None:
        """Every action is finalized once, latest first, before the run's final record."""
        journal = Journal()
        result = await _run(db, make_saga(CHAIN), Tidy(journal))
        assert result.ok
        assert journal.names("finalize") == ["c", "b", "a"]
        async with open_store(db) as store:
            log = await store.read_log("r")
        assert finalized(log) == ["c", "b", "a"]
        kinds = [r.kind for r in log]
        assert kinds[-1] is EventKind.RUN_FINISHED
        assert kinds.index(EventKind.ACTION_FINALIZED) > max(
            i for i, k in enumerate(kinds) if k is EventKind.ACTION_SUCCEEDED
        )

    async def test_after_a_failure_only_started_actions_are_finalized(self, db: str) -> None:
        """A compensated run finalizes what started (the failed action too), after the
        compensations, and never an action skipped because the run ended first."""
        journal = Journal()
        saga = make_saga(CHAIN)
        result = await _run(db, saga, Tidy(journal, Script(fatal={"b"})))
        assert result.state is RunState.COMPENSATED
        assert journal.names("finalize") == ["b", "a"]
        order = [(w, a) for w, a, _ in journal.entries]
        assert order.index(("compensated", "a")) < order.index(("finalize", "b"))

    async def test_a_failing_finalize_is_recorded_and_changes_no_outcome(self, db: str) -> None:
        """A finalize that raises is logged with its error, not retried; the run succeeds."""
        journal = Journal()
        result = await _run(db, make_saga(CHAIN), Tidy(journal, fail_finalize={"b"}))
        assert result.ok
        assert journal.names("finalize") == ["c", "b", "a"]
        async with open_store(db) as store:
            log = await store.read_log("r")
        errors = {
            r.action: r.data.get("error") for r in log if r.kind is EventKind.ACTION_FINALIZED
        }
        assert errors == {"c": None, "b": "RuntimeError: cannot tidy b", "a": None}

    async def test_a_stuck_run_is_not_finalized_until_it_ends(self, db: str) -> None:
        """Stuck is not over: nothing is finalized; the resumed run ends and finalizes."""
        journal = Journal()
        script = Script(fatal={"c"})
        action = Tidy(journal, script)
        async with Engine(db, actions={"step": action}, clock=FakeClock()) as engine:
            stuck = await engine.run(make_saga(CHAIN, pivots=["b"]), run_id="r")
            assert stuck.state is RunState.STUCK and journal.names("finalize") == []
            script.fatal.clear()
            resumed = await engine.resume("r")
        assert resumed.ok
        assert journal.names("finalize") == ["c", "b", "a"]

    async def test_the_log_refuses_a_second_finalize(self) -> None:
        """The state machine refuses finalizing twice, or an action that never started."""
        created = Event("r", EventKind.RUN_CREATED, None, {"state": "queued"})
        started = Event("r", EventKind.RUN_STARTED, None, {"state": "running"})
        a_started = Event("r", EventKind.ACTION_STARTED, "a", {"attempt": 1})
        done = Event("r", EventKind.ACTION_FINALIZED, "a")
        fold("r", ["a"], [created, started, a_started, done])
        with pytest.raises(InvalidTransition):
            fold("r", ["a"], [created, started, a_started, done, done])
        with pytest.raises(InvalidTransition):
            fold("r", ["a"], [created, started, done])


class TestFinalizeCrashLaw:
    @pytest.mark.parametrize("fatal", [set(), {"b"}], ids=["succeeds", "compensates"])
    async def test_crash_at_any_write_finalizes_each_started_action_once(
        self, db: str, fatal: set[str]
    ) -> None:
        """For every N: crash at the Nth log write and resume; the run ends as a clean one,
        every started action is recorded finalized exactly once, and no hook recorded
        before the crash runs again."""
        saga = make_saga(CHAIN)
        inner = open_store(db)
        counting = CrashingStore(inner, None)
        async with inner:
            clean = await _run(counting, saga, Tidy(Journal(), Script(fatal=set(fatal))), "clean")
            clean_log = await inner.read_log("clean")
        for crash_at in range(1, counting.writes + 1):
            run_id = f"r{crash_at}"
            inner = open_store(db)
            await inner.open()
            crashing = CrashingStore(inner, crash_at)
            try:
                await _run(crashing, saga, Tidy(Journal(), Script(fatal=set(fatal))), run_id)
            except SimulatedCrash:
                pass
            except BaseExceptionGroup as group:
                assert group.subgroup(SimulatedCrash) is not None
            finally:
                before = finalized(await inner.read_log(run_id))
                await inner.close()
            again = Journal()
            async with Engine(db, actions={"step": Tidy(again, Script(fatal=set(fatal)))}) as e:
                try:
                    result = await e.resume(run_id)
                except RunNotFound:  # the crash came before the run was created
                    result = await e.run(saga, run_id=run_id)
                log = await e.log(run_id)
            assert result.state is clean.state, crash_at
            assert sorted(finalized(log)) == sorted(finalized(clean_log)), crash_at
            assert not set(before) & set(again.names("finalize")), crash_at
