"""Issue 12: what a child saga (`uses: saga/NAME`) costs per call against an inline action.

Both sagas are chains of `CALLS` steps on a durable SQLite log: in one, each step is an
inline no-op action; in the other, each step is a child saga holding that one no-op
action (a run of its own: created, driven and finished in its own commits). The inline
chain is timed before each round of the child chain (`paired`), in the same weather.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine import ActionSpec, CompiledSaga

from .pairing import paired
from .workloads import NOOP_USES

CALLS = 20


def _chain(name: str, step: ActionSpec) -> CompiledSaga:
    actions = {
        f"s{i:02d}": ActionSpec(
            name=f"s{i:02d}",
            uses=step.uses,
            child=step.child,
            depends_on=frozenset({f"s{i - 1:02d}"}) if i else frozenset(),
        )
        for i in range(CALLS)
    }
    return CompiledSaga(name=name, version=1, actions=actions)


INLINE = _chain("bench-inline", ActionSpec(name="step", uses=NOOP_USES))
CHILD = CompiledSaga(
    name="bench-one", version=1, actions={"noop": ActionSpec(name="noop", uses=NOOP_USES)}
)
CHILDREN = _chain("bench-children", ActionSpec(name="step", uses="saga/bench-one", child=CHILD))


@pytest.fixture
def engine(runner: asyncio.Runner, tmp_path: Path) -> Iterator[Any]:
    from .engine_runner import EngineService

    service = EngineService(runner, tmp_path / "sagactl.sqlite")
    yield service
    service.close()


def test_child_saga_call_vs_inline_action(benchmark: Any, engine: Any) -> None:
    def run(saga: CompiledSaga) -> Any:
        return engine.call(lambda e: e.run(saga))

    result = paired(
        benchmark,
        run,
        lambda: run(INLINE),
        prepare=lambda: (CHILDREN,),
        key="sagactl_child_calls",
        units=CALLS,
        baseline_key="sagactl_inline_calls",
        baseline_units=CALLS,
        rounds=10,
    )
    assert result.ok and len(result.actions) == CALLS
    children = engine.call(lambda e: e.list_runs(parent=result.run_id))
    assert len(children) == CALLS and {c.state for c in children} == {"succeeded"}
