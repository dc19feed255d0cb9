"""The definition language's features together (issue 12): generated parent DAGs in which
some actions run only `if:` an input says so, some fan out over an input array, and one
runs a child saga, with a failure anywhere. A crash at every log write, then a resume,
ends as the clean run with nothing that completed executed (or undone) twice; the clean
run skips exactly the actions whose condition is false and undoes exactly what completed."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sagactl.engine import CompiledSaga
from sagactl.engine.testing import rehearse_crashes

from .sagas import Script, make_saga
from .test_child_sagas import _first_run, step

Family = tuple[
    dict[str, list[str]], str, dict[str, list[str]], dict[str, int], dict[str, bool], set[str]
]
"""Parent DAG, the action running the child, the child's DAG, fan-outs with their sizes,
conditions with their value, the failing units (actions or elements)."""


@st.composite
def families(draw: st.DrawFn) -> Family:
    size = draw(st.integers(3, 5))
    names = [f"p{i}" for i in range(size)]
    parent = {
        n: sorted(draw(st.sets(st.sampled_from(names[:i])))) if i else []
        for i, n in enumerate(names)
    }
    kid_names = [f"k{i}" for i in range(draw(st.integers(1, 2)))]
    kid = {n: kid_names[:i] for i, n in enumerate(kid_names)}
    at = draw(st.sampled_from(names))
    others = [n for n in names if n != at]
    fan_outs = draw(st.dictionaries(st.sampled_from(others), st.integers(0, 2), max_size=2))
    conditions = draw(st.dictionaries(st.sampled_from(others), st.booleans(), max_size=2))
    units = [
        unit
        for n in others
        for unit in ([f"{n}.{i}" for i in range(fan_outs[n])] if n in fan_outs else [n])
    ]
    failing = draw(st.sets(st.sampled_from(units + kid_names), max_size=1))
    return parent, at, kid, fan_outs, conditions, failing


def build(family: Family) -> tuple[CompiledSaga, dict[str, Any]]:
    parent_dag, at, kid_dag, fan_outs, conditions, _ = family
    child = make_saga(kid_dag, name="kid")
    base = make_saga(parent_dag, name="parent")
    actions = dict(base.actions)
    for name, spec in base.actions.items():
        changes: dict[str, Any] = {}
        if name == at:
            changes.update(uses="saga/kid", with_={}, child=child)
        if name in fan_outs:
            changes.update(
                with_={"name": "${{ item }}"}, for_each=f"${{{{ inputs.items_{name} }}}}"
            )
        if name in conditions:
            changes.update(condition=f"${{{{ inputs.go_{name} }}}}")
        actions[name] = dataclasses.replace(spec, **changes)
    inputs: dict[str, Any] = {
        **{f"items_{n}": [f"{n}.{i}" for i in range(k)] for n, k in fan_outs.items()},
        **{f"go_{n}": value for n, value in conditions.items()},
    }
    schemas = {
        **{f"items_{n}": {"type": "array", "items": {"type": "string"}} for n in fan_outs},
        **{f"go_{n}": {"type": "boolean"} for n in conditions},
    }
    saga = CompiledSaga(name="parent", version=1, actions=actions, inputs=schemas)
    return saga, inputs


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(families())
def test_conditions_fan_out_and_a_child_with_a_crash_at_every_write(family: Family) -> None:
    _, at, kid_dag, fan_outs, conditions, failing = family
    saga, inputs = build(family)
    action, journal = step(Script(fatal=set(failing)))

    async def runs(tx: Any) -> Any:
        return [list(r) for r in await tx.fetchall("SELECT run_id, state FROM runs ORDER BY 1")]

    rehearsal = anyio.run(lambda: rehearse_crashes(saga, {"step": action}, inputs, probe=runs))
    clean = _first_run(journal)
    executed = [a for w, a in clean if w == "execute"]
    done = {a for w, a in clean if w == "done"}
    undone = [a for w, a in clean if w == "compensated"]
    assert len(executed) == len(set(executed))
    skipped = {n for n, value in conditions.items() if not value}
    for name in skipped:  # never ran, in any form, so never undone either
        ran = {u for u in executed if u == name or u.startswith(f"{name}.")}
        assert ran == set(), (name, ran)
    failed = bool(set(failing) & set(executed))
    assert rehearsal.expected.state == ("compensated" if failed else "succeeded")
    assert set(undone) == (done if failed else set())
    assert rehearsal.writes >= 1
    if not failed:  # everything that was not skipped ran, each element and child action
        wanted = {
            unit
            for name in saga.actions
            if name not in skipped and name != at
            for unit in (
                [f"{name}.{i}" for i in range(fan_outs[name])] if name in fan_outs else [name]
            )
        }
        assert set(executed) == wanted | set(kid_dag)
