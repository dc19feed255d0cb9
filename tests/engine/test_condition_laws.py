"""The engine's laws over generated DAGs with conditions: exactly the actions a model says
are skipped, nothing skipped runs or is compensated, and a crash at any write changes
nothing."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sagactl.engine import ActionSpec, CompiledSaga, RetryPolicy
from sagactl.engine.api import Engine, RunResult
from sagactl.engine.states import ActionState
from sagactl.engine.testing import rehearse_crashes

from .sagas import FakeClock, Journal, Script, Step
from .test_laws import descendants, in_tmp

LAWS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CRASHES = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Plan:
    """A generated saga: who uses whose outputs, who only needs whom, and the conditions."""

    uses: dict[str, list[str]]
    needs: dict[str, list[str]]
    conditions: dict[str, tuple[str, str | None, bool]]
    """Action -> (text, the action whose output it reads or None, whether it holds)."""
    flags: dict[str, bool]
    failing: frozenset[str]

    def saga(self) -> CompiledSaga:
        specs = {}
        for name in self.uses:
            refs = [f"${{{{ actions.{d}.outputs.value }}}}" for d in self.uses[name]]
            condition = self.conditions.get(name)
            read = {condition[1]} if condition and condition[1] else set()
            specs[name] = ActionSpec(
                name=name,
                uses="step",
                with_={"name": name, "uses": refs},
                needs=tuple(self.needs[name]),
                depends_on=frozenset(self.uses[name]) | set(self.needs[name]) | read,
                retry=RetryPolicy(attempts=1),
                condition=condition[0] if condition else None,
            )
        inputs = {f"c_{name}": {"type": "boolean"} for name in self.flags}
        return CompiledSaga(name="laws", version=1, actions=specs, inputs=inputs)

    def inputs(self) -> dict[str, bool]:
        return {f"c_{name}": flag for name, flag in self.flags.items()}

    def skipped(self) -> set[str]:
        """The model: skipped when the condition is false or a used action was skipped."""
        skipped: set[str] = set()
        for name in self.uses:  # generated in topological order
            condition = self.conditions.get(name)
            used = set(self.uses[name]) | ({condition[1]} if condition and condition[1] else set())
            if used & skipped or (condition is not None and not condition[2]):
                skipped.add(name)
        return skipped


@st.composite
def plans(draw: st.DrawFn, *, failures: bool = True) -> Plan:
    size = draw(st.integers(1, 7))
    names = [f"a{i}" for i in range(size)]
    uses: dict[str, list[str]] = {}
    needs: dict[str, list[str]] = {}
    conditions: dict[str, tuple[str, str | None, bool]] = {}
    flags: dict[str, bool] = {}
    for i, name in enumerate(names):
        earlier = draw(st.sets(st.sampled_from(names[:i]))) if i else set()
        used = {d for d in earlier if draw(st.booleans())}
        uses[name], needs[name] = sorted(used), sorted(earlier - used)
        kind = draw(st.sampled_from(["none", "input", "output"] if i else ["none", "input"]))
        if kind == "input":
            flags[name] = draw(st.booleans())
            conditions[name] = (f"${{{{ inputs.c_{name} }}}}", None, flags[name])
        elif kind == "output":
            source = draw(st.sampled_from(names[:i]))
            holds = draw(st.booleans())
            op = "==" if holds else "!="
            text = f"${{{{ actions.{source}.outputs.value {op} '{source}-out' }}}}"
            conditions[name] = (text, source, holds)
    failing = draw(st.sets(st.sampled_from(names), max_size=1)) if failures else set()
    return Plan(uses, needs, conditions, flags, frozenset(failing))


class TestSkipLaw:
    @LAWS
    @given(plans(failures=False))
    def test_exactly_the_model_skips(self, plan: Plan) -> None:
        """Without failures: the skipped actions are the model's, each skipped with a
        reason, and every other action ran once and succeeded."""
        journal = Journal()
        result = in_tmp(lambda db: _with_inputs(db, plan, journal))
        expected = plan.skipped()
        assert result.ok
        skipped = {n for n, s in result.actions.items() if s.state is ActionState.SKIPPED}
        assert skipped == expected
        assert all(result.actions[n].reason for n in skipped)
        assert sorted(journal.names("execute")) == sorted(set(plan.uses) - expected)

    @LAWS
    @given(plans())
    def test_nothing_skipped_runs_or_is_compensated(self, plan: Plan) -> None:
        """With a failure: no action the model skips executes, exactly the completed
        actions are compensated (dependents first), and none of the skipped."""
        journal = Journal()
        result = in_tmp(lambda db: _with_inputs(db, plan, journal))
        expected = plan.skipped()
        executed, completed = set(journal.names("execute")), set(journal.names("done"))
        compensated = journal.names("compensated")
        assert not executed & expected
        if not plan.failing - expected:
            assert result.ok and compensated == []
            return
        assert result.state == "compensated"
        assert sorted(compensated) == sorted(completed)
        order = [(w, a) for w, a, _ in journal.entries]
        dag = {n: plan.uses[n] + plan.needs[n] for n in plan.uses}
        for name in compensated:
            for later in descendants(dag, name) & set(compensated):
                assert order.index(("compensated", later)) < order.index(("compensate", name))
        for name, status in result.actions.items():
            if status.reason is not None:  # skipped by a condition, not by the run's end
                assert name in expected


async def _with_inputs(db: str, plan: Plan, journal: Journal) -> RunResult:
    step = Step(journal, Script(fatal=set(plan.failing)))
    async with Engine(db, actions={"step": step}, clock=FakeClock()) as engine:
        return await engine.run(plan.saga(), plan.inputs(), run_id="r")


class TestCrashLaw:
    @CRASHES
    @given(plans())
    def test_a_crash_at_any_write_keeps_every_decision(self, plan: Plan) -> None:
        """A crash at every log write, then a resume, ends as the clean run did: the same
        skips and compensations, nothing completed run again."""
        step = Step(Journal(), Script(fatal=set(plan.failing)))
        rehearsal = anyio.run(rehearse_crashes, plan.saga(), {"step": step}, plan.inputs())
        skipped = {
            n for n, (s, _) in rehearsal.expected.actions.items() if s is ActionState.SKIPPED
        }
        assert plan.skipped() <= skipped
