"""The engine's laws over generated DAGs in which some actions fan out, with generated
failing actions and elements, and a crash at every log write."""

from __future__ import annotations

from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sagactl.engine import ActionSpec, CompiledSaga, RetryPolicy
from sagactl.engine.api import Engine, RunResult
from sagactl.engine.testing import rehearse_crashes

from .sagas import FakeClock, Journal, Script, Step
from .test_laws import dags, descendants, in_tmp

Scenario = tuple[dict[str, list[str]], dict[str, int], set[str]]
"""A DAG, the fan-outs with their sizes, and the names (actions or elements) that fail."""


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    dag = draw(dags())
    fan_outs = draw(st.dictionaries(st.sampled_from(sorted(dag)), st.integers(0, 3)))
    units = [
        unit
        for name in sorted(dag)
        for unit in ([f"{name}.{i}" for i in range(fan_outs[name])] if name in fan_outs else [name])
    ]
    failing = draw(st.sets(st.sampled_from(units), max_size=2)) if units else set()
    return dag, fan_outs, failing


def build(dag: dict[str, list[str]], fan_outs: dict[str, int]) -> tuple[CompiledSaga, Any]:
    """The saga (every unit the `step` action, named after itself) and its inputs."""
    actions = {}
    for name, needs in dag.items():
        fan_out = name in fan_outs
        actions[name] = ActionSpec(
            name=name,
            uses="step",
            with_={"name": "${{ item }}" if fan_out else name},
            needs=tuple(needs),
            depends_on=frozenset(needs),
            retry=RetryPolicy(attempts=1),
            for_each=f"${{{{ inputs.items_{name} }}}}" if fan_out else None,
        )
    inputs = {f"items_{n}": [f"{n}.{i}" for i in range(size)] for n, size in fan_outs.items()}
    schemas = {key: {"type": "array"} for key in inputs}
    return CompiledSaga(name="laws", version=1, actions=actions, inputs=schemas), inputs


def action_of(unit: str) -> str:
    return unit.split(".")[0]


LAWS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CRASH_LAW = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestFanOutLaws:
    @LAWS
    @given(scenarios())
    def test_completed_units_are_compensated_in_reverse_order(self, scenario: Scenario) -> None:
        """Nothing executes twice; after a failure exactly the completed actions and
        elements are compensated, each fan-out's latest element first, and every unit of
        a dependent before any unit of its dependency."""
        dag, fan_outs, failing = scenario
        saga, inputs = build(dag, fan_outs)
        journal = Journal()

        async def main(db: str) -> RunResult:
            step = Step(journal, Script(fatal=set(failing)))
            async with Engine(db, actions={"step": step}, clock=FakeClock()) as engine:
                return await engine.run(saga, inputs, run_id="r")

        result = in_tmp(main)
        executed = journal.names("execute")
        assert len(executed) == len(set(executed))
        completed, compensated = set(journal.names("done")), journal.names("compensated")
        if result.ok:
            assert not set(executed) & failing and compensated == []
            for name, size in fan_outs.items():
                results = (result.actions[name].outputs or {})["results"]
                assert [r["value"] for r in results] == [f"{name}.{i}-out" for i in range(size)]
            return
        assert result.state == "compensated"
        assert sorted(compensated) == sorted(completed)
        order = [(w, a) for w, a, _ in journal.entries]
        for unit in compensated:
            start = order.index(("compensate", unit))
            for later in compensated:
                later_action = action_of(later)
                after = later_action in descendants(dag, action_of(unit))
                same_later = later_action == action_of(unit) and later > unit
                if after or same_later:
                    assert order.index(("compensated", later)) < start, (later, unit)

    @CRASH_LAW
    @given(scenarios())
    def test_crash_at_any_write_then_resume_ends_like_a_clean_run(self, scenario: Scenario) -> None:
        """The testing kit's rehearsal: a crash at each log write, then a resume, ends as
        a clean run, and no action or element that completed runs (or is undone) again."""
        dag, fan_outs, failing = scenario
        saga, inputs = build(dag, fan_outs)
        step = Step(Journal(), Script(fatal=set(failing)))
        rehearsal = anyio.run(rehearse_crashes, saga, {"step": step}, inputs)
        assert rehearsal.writes >= 1
        for name, size in fan_outs.items():
            assert len(rehearsal.expected.elements.get(name, ())) <= size
