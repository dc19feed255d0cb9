"""The engine's laws, over generated DAGs with generated failure and crash points."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sagactl.engine.api import Engine, RunResult
from sagactl.engine.model import CompiledSaga
from sagactl.engine.testing import rehearse_crashes

from .sagas import FakeClock, Journal, Script, Step, make_saga

LAWS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    size = draw(st.integers(1, 7))
    names = [f"a{i}" for i in range(size)]
    return {
        name: sorted(draw(st.sets(st.sampled_from(names[:i]))) if i else [])
        for i, name in enumerate(names)
    }


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, list[str]], set[str], set[str]]:
    """A DAG, the actions that fail, and the irreversible ones."""
    dag = draw(dags())
    failing = draw(st.sets(st.sampled_from(sorted(dag)), max_size=2))
    irreversible = draw(st.sets(st.sampled_from(sorted(dag)), max_size=2))
    return dag, failing, irreversible


def descendants(dag: dict[str, list[str]], name: str) -> set[str]:
    found: set[str] = set()
    todo = [n for n, needs in dag.items() if name in needs]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(n for n, needs in dag.items() if current in needs)
    return found


async def _run(db: str, saga: CompiledSaga, step: Step, store: Any = None, **kw: Any) -> RunResult:
    async with Engine(store or db, actions={"step": step}, clock=FakeClock(), **kw) as engine:
        return await engine.run(saga, run_id="r")


def in_tmp(fn: Any) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        return anyio.run(fn, f"sqlite://{Path(tmp) / 'runs.db'}")


class TestDependencyLaw:
    @LAWS
    @given(dags(), st.data())
    def test_no_action_starts_before_its_dependencies(
        self, dag: dict[str, list[str]], data: st.DataObject
    ) -> None:
        """Every action executes after all its dependencies are done; all succeed."""
        sleeps = {n: data.draw(st.sampled_from([0, 0.001, 0.003])) for n in dag}
        journal = Journal()

        async def main(db: str) -> RunResult:
            return await _run(db, make_saga(dag), Step(journal, Script(sleep=sleeps)))

        result = in_tmp(main)
        assert result.ok
        order = [(w, a) for w, a, _ in journal.entries]
        for name, needs in dag.items():
            for dep in needs:
                assert order.index(("done", dep)) < order.index(("execute", name))


class TestCompensationLaw:
    @LAWS
    @given(scenarios())
    def test_exactly_the_completed_actions_are_compensated_in_reverse_order(
        self, scenario: tuple[dict[str, list[str]], set[str], set[str]]
    ) -> None:
        """After a failure, exactly the completed compensable actions are compensated, each
        after every compensated dependent of it."""
        dag, failing, irreversible = scenario
        journal = Journal()

        async def main(db: str) -> RunResult:
            saga = make_saga(dag, irreversible=irreversible)
            return await _run(db, saga, Step(journal, Script(fatal=set(failing))))

        result = in_tmp(main)
        completed = set(journal.names("done"))
        compensated = journal.names("compensated")
        if not failing:
            assert result.ok and compensated == []
            return
        assert result.state == "compensated"
        assert sorted(compensated) == sorted(completed - irreversible)
        assert not set(compensated) & failing
        order = [(w, a) for w, a, _ in journal.entries]
        for name in compensated:
            for later in descendants(dag, name) & set(compensated):
                assert order.index(("compensated", later)) < order.index(("compensate", name))
        for name, status in result.actions.items():
            if name in failing and status.state.value != "pending":
                assert status.state.value in ("failed", "skipped")


CRASH_LAW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestCrashLaw:
    @CRASH_LAW
    @given(scenarios())
    def test_crash_at_any_write_then_resume_ends_like_a_clean_run(
        self, scenario: tuple[dict[str, list[str]], set[str], set[str]]
    ) -> None:
        """For every N: crash at the Nth log write, resume with a fresh store; the run ends
        as it does without a crash, and nothing completed (or compensated) before the crash
        is executed (or compensated) again (the testing kit's crash rehearsal)."""
        dag, failing, irreversible = scenario
        saga = make_saga(dag, irreversible=irreversible)
        step = Step(Journal(), Script(fatal=set(failing)))
        rehearsal = anyio.run(rehearse_crashes, saga, {"step": step})
        assert rehearsal.writes >= 1
        assert rehearsal.expected.state == ("compensated" if failing else "succeeded")
