"""Child sagas at run time: a run of its own with a parent link, outputs, compensation in
both directions, pinning, and crash safety (a crash at every log write)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sagactl.engine import ActionInfo
from sagactl.engine.api import Engine
from sagactl.engine.model import CompiledSaga
from sagactl.engine.saga_registry import SagaRegistry
from sagactl.engine.store import RunExists, open_store
from sagactl.engine.testing import rehearse_crashes
from sagactl.engine.testing.crashing import CrashingStore, SimulatedCrash

from .sagas import Journal, Script, Step, make_saga

CATALOG_INFO = ActionInfo("step", Step.input_schema, Step.output_schema, compensable=True)

CHILD = """\
apiVersion: sagactl/v1
kind: Saga
metadata: {name: child}
inputs: {label: {type: string}}
actions:
  c1: {uses: step, with: {name: c1}}
  c2: {uses: step, with: {name: "c2-${{ inputs.label }}"}, needs: [c1]}
outputs:
  first: ${{ actions.c1.outputs.value }}
  second: ${{ actions.c2.outputs.value }}
"""

PARENT = """\
apiVersion: sagactl/v1
kind: Saga
metadata: {name: parent}
actions:
  p1: {uses: step, with: {name: p1}}
  sub: {uses: saga/child, with: {label: "${{ actions.p1.outputs.value }}"}}
  p2: {uses: step, with: {name: "${{ actions.sub.outputs.first }}-p2"}}
outputs:
  got: ${{ actions.sub.outputs.second }}
  p2: ${{ actions.p2.outputs.value }}
"""


class Catalog:
    def info(self, name: str) -> ActionInfo | None:
        return CATALOG_INFO if name == "step" else None

    def names(self) -> list[str]:
        return ["step"]


def registry(folder: Path, **files: str) -> SagaRegistry:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    return SagaRegistry(Catalog(), [folder])


@pytest.fixture
def parent(tmp_path: Path) -> CompiledSaga:
    return registry(tmp_path / "defs", child=CHILD, parent=PARENT).get("parent")


def step(script: Script | None = None) -> tuple[Step, Journal]:
    journal = Journal()
    return Step(journal, script or Script()), journal


async def run(db: str, saga: CompiledSaga, step_action: Step) -> tuple[Any, Any, list[Any]]:
    async with Engine(db, actions={"step": step_action}) as engine:
        result = await engine.run(saga, run_id="r")
        child = await engine.status("r/sub")
        children = await engine.store.list_runs(parent="r")
    return result, child, children


@pytest.mark.anyio
async def test_success_outputs_and_parent_link(db: str, parent: CompiledSaga) -> None:
    action, journal = step()
    result, child, children = await run(db, parent, action)
    assert str(result.state) == "succeeded"
    assert result.outputs == {"got": "c2-p1-out-out", "p2": "c1-out-p2-out"}
    assert result.to_json()["outputs"] == result.outputs
    assert result.actions["sub"].outputs == {"first": "c1-out", "second": "c2-p1-out-out"}
    assert str(child.state) == "succeeded"
    assert child.to_json()["parent"] == {"run_id": "r", "action": "sub"}
    assert result.to_json()["parent"] is None
    assert [c.run_id for c in children] == ["r/sub"]
    assert journal.names("execute") == ["p1", "c1", "c2-p1-out", "c1-out-p2"]
    # The child's actions got the child's own idempotency keys.
    assert ("c1", 1, "r/sub/c1") in action.contexts


@pytest.mark.anyio
async def test_child_failure_compensates_child_then_parent(db: str, parent: CompiledSaga) -> None:
    action, journal = step(Script(fatal={"c2-p1-out"}))
    result, child, _ = await run(db, parent, action)
    assert str(child.state) == "compensated"
    assert str(result.state) == "compensated"
    assert result.failed_action == "sub"
    assert "child saga child (run r/sub) compensated" in (result.error or "")
    # The child undid its own completed action first, then the parent undid p1.
    assert journal.names("compensated") == ["c1", "p1"]
    assert str(result.actions["sub"].state) == "failed"


@pytest.mark.anyio
async def test_parent_failure_compensates_succeeded_child(db: str, parent: CompiledSaga) -> None:
    action, journal = step(Script(fatal={"c1-out-p2"}))
    result, child, _ = await run(db, parent, action)
    assert str(result.state) == "compensated"
    assert str(child.state) == "compensated"
    assert result.outputs is None
    assert child.outputs == {"first": "c1-out", "second": "c2-p1-out-out"}
    # The child's completed actions in reverse order, then the parent's p1.
    assert journal.names("compensated") == ["c2-p1-out", "c1", "p1"]
    assert str(result.actions["sub"].state) == "compensated"


@pytest.mark.anyio
async def test_child_pinned_with_parent(tmp_path: Path, db: str) -> None:
    """A parent resumed after its child's file changed runs the child it pinned."""
    folder = tmp_path / "defs"
    saga = registry(folder, child=CHILD, parent=PARENT).get("parent")
    changed = CHILD.replace("{name: c1}", "{name: X}")
    later = registry(folder, child=changed, parent=PARENT).get("parent")
    assert later.canonical_hash != saga.canonical_hash  # the child is part of the pin
    action, journal = step()
    async with open_store(db) as inner:
        crashing = CrashingStore(inner, 4)  # dies at the child's second commit
        with pytest.raises((SimulatedCrash, BaseExceptionGroup)):
            async with Engine(crashing, actions={"step": action}) as engine:
                await engine.run(saga, run_id="r")
    assert journal.names("execute") == ["p1", "c1"]
    async with Engine(db, actions={"step": action}) as engine:
        result = await engine.resume("r")
        with pytest.raises(RunExists):  # the changed definition is another request
            await engine.run(later, run_id="r")
    assert str(result.state) == "succeeded"
    assert "X" not in journal.names("execute")
    assert result.outputs == {"got": "c2-p1-out-out", "p2": "c1-out-p2-out"}


@pytest.mark.anyio
async def test_crash_at_every_log_write(parent: CompiledSaga) -> None:
    """A crash at any write of parent or child, then a resume, ends as a clean run and
    never starts a second child run; the probe sees the same runs and states."""
    action, _ = step()

    async def runs(tx: Any) -> Any:
        rows = await tx.fetchall(
            "SELECT run_id, state, parent_run_id, parent_action FROM runs ORDER BY run_id"
        )
        return [list(r) for r in rows]

    rehearsal = await rehearse_crashes(parent, {"step": action}, probe=runs)
    assert rehearsal.expected.effect == [
        ["rehearsal", "succeeded", None, None],
        ["rehearsal/sub", "succeeded", "rehearsal", "sub"],
    ]
    assert rehearsal.writes >= 7  # the parent's four commits and the child's three


@pytest.mark.anyio
async def test_crash_at_every_log_write_while_compensating_child(
    parent: CompiledSaga,
) -> None:
    action, _ = step(Script(fatal={"c1-out-p2"}))

    async def runs(tx: Any) -> Any:
        return [list(r) for r in await tx.fetchall("SELECT run_id, state FROM runs ORDER BY 1")]

    rehearsal = await rehearse_crashes(parent, {"step": action}, probe=runs)
    assert rehearsal.expected.effect == [
        ["rehearsal", "compensated"],
        ["rehearsal/sub", "compensated"],
    ]


DRIVER = """
import sys, anyio
sys.path.insert(0, {tests!r})
from pathlib import Path
from sagas import Journal, Script, Step
from sagactl.engine import ActionInfo
from sagactl.engine.api import Engine
from sagactl.engine.saga_registry import SagaRegistry

class Catalog:
    def info(self, name):
        return ActionInfo("step", Step.input_schema, Step.output_schema, compensable=True)

    def names(self):
        return ["step"]

async def main(db, folder):
    saga = SagaRegistry(Catalog(), [Path(folder)]).get("parent")
    script = Script(hang={{"c2-p1-out"}}, entered={{"c2-p1-out": anyio.Event()}})
    async with Engine(db, actions={{"step": Step(Journal(), script)}}) as engine:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: engine.run(saga, run_id="r"))
            await script.entered["c2-p1-out"].wait()
            print("holding", flush=True)
            await anyio.sleep_forever()

anyio.run(main, sys.argv[1], sys.argv[2])
"""


@pytest.mark.slow
def test_sigkill_inside_the_child_then_resume(tmp_path: Path) -> None:
    """A real process killed with SIGKILL while its child saga runs: `resume` continues
    the same child run (c1 is not run again) and the parent finishes."""
    import signal
    import subprocess
    import sys

    db = f"sqlite://{tmp_path / 'runs.db'}"
    registry(tmp_path / "defs", child=CHILD, parent=PARENT)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(Path(__file__).parent)))
    other = subprocess.Popen(
        [sys.executable, str(script), db, str(tmp_path / "defs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "holding", other.stderr
        other.send_signal(signal.SIGKILL)
        assert other.wait(timeout=30) == -signal.SIGKILL
    finally:
        if other.poll() is None:
            other.kill()
        other.communicate(timeout=30)

    action, journal = step()

    async def resume() -> tuple[Any, Any, list[Any]]:
        async with Engine(db, actions={"step": action}) as engine:
            result = await engine.resume("r")
            return result, await engine.status("r/sub"), await engine.list_runs(parent="r")

    result, child, children = anyio.run(resume)
    assert str(result.state) == "succeeded"
    assert result.outputs == {"got": "c2-p1-out-out", "p2": "c1-out-p2-out"}
    assert journal.names("execute") == ["c2-p1-out", "c1-out-p2"]  # c1 and p1 not again
    assert [c.run_id for c in children] == ["r/sub"]
    assert child.actions["c1"].attempts == 1 and child.actions["c2"].attempts == 2


def _with_child(parent_dag: dict[str, list[str]], at: str, child: CompiledSaga) -> CompiledSaga:
    """`make_saga(parent_dag)` with the action `at` running `child` instead of a step."""
    base = make_saga(parent_dag, name="parent")
    actions = dict(base.actions)
    actions[at] = dataclasses.replace(actions[at], uses=f"saga/{child.name}", with_={}, child=child)
    return CompiledSaga(name="parent", version=1, actions=actions)


@st.composite
def families(draw: st.DrawFn) -> tuple[dict[str, list[str]], str, dict[str, list[str]], set[str]]:
    """A parent DAG, the action that runs the child, the child's DAG, the failing actions."""
    size = draw(st.integers(2, 4))
    names = [f"p{i}" for i in range(size)]
    parent = {
        n: sorted(draw(st.sets(st.sampled_from(names[:i])))) if i else []
        for i, n in enumerate(names)
    }
    kid_names = [f"k{i}" for i in range(draw(st.integers(1, 3)))]
    kid = {
        n: sorted(draw(st.sets(st.sampled_from(kid_names[:i])))) if i else []
        for i, n in enumerate(kid_names)
    }
    at = draw(st.sampled_from(names))
    steps = [n for n in names if n != at] + kid_names
    failing = draw(st.sets(st.sampled_from(steps), max_size=1))
    return parent, at, kid, failing


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(families())
def test_law_child_in_generated_dags_with_crashes(
    family: tuple[dict[str, list[str]], str, dict[str, list[str]], set[str]],
) -> None:
    """Over generated parents holding a child saga, with a failure anywhere: a crash at
    every log write ends as the clean run; the clean run undoes exactly the completed
    actions, each before what it depends on (a child's actions before the parent's
    actions the child waited for)."""
    parent_dag, at, kid_dag, failing = family
    saga = _with_child(parent_dag, at, make_saga(kid_dag, name="kid"))
    action, journal = step(Script(fatal=set(failing)))

    async def runs(tx: Any) -> Any:
        return [list(r) for r in await tx.fetchall("SELECT run_id, state FROM runs ORDER BY 1")]

    rehearsal = anyio.run(lambda: rehearse_crashes(saga, {"step": action}, probe=runs))
    expected = "compensated" if failing else "succeeded"
    assert rehearsal.expected.state == expected
    # The clean run is the first one the journal saw: up to its first "execute" again.
    clean = _first_run(journal)
    done = {a for w, a in clean if w == "done"}
    undone = [a for w, a in clean if w == "compensated"]
    assert set(undone) == (done if failing else set())
    order = {name: i for i, name in enumerate(undone)}
    waits = {
        **{k: set(v) for k, v in kid_dag.items()},
        **{p: set(v) for p, v in parent_dag.items()},
    }
    for name in undone:
        for dependency in waits.get(name, ()):
            if dependency in order:
                assert order[name] < order[dependency], (name, dependency, undone)
        if name.startswith("k"):  # the child's actions before the parent's it waited for
            for dependency in parent_dag[at]:
                if dependency in order:
                    assert order[name] < order[dependency], (name, dependency, undone)


def _first_run(journal: Journal) -> list[tuple[str, str]]:
    """The clean run's (what, action) entries: until an action executes a second time."""
    seen: set[str] = set()
    entries: list[tuple[str, str]] = []
    for what, name, _ in journal.entries:
        if what == "execute":
            if name in seen:
                break
            seen.add(name)
        entries.append((what, name))
    return entries


RACER = """\
apiVersion: sagactl/v1
kind: Saga
metadata: {name: racer}
actions:
  sub: {uses: saga/child, with: {label: x}}
  bad: {uses: step, with: {name: bad}}
"""


@pytest.mark.anyio
async def test_sibling_failure_stops_the_running_child(tmp_path: Path, db: str) -> None:
    """A sibling fails while the child runs: the child is asked to stop and undoes its
    completed action itself (it ends cancelled); the parent then compensates."""
    saga = registry(tmp_path / "defs", child=CHILD, racer=RACER).get("racer")
    entered = anyio.Event()
    script = Script(fatal={"bad"}, hang={"c2-x"}, entered={"c2-x": entered}, gates={"bad": entered})
    action, journal = step(script)
    async with Engine(db, actions={"step": action}) as engine:
        result = await engine.run(saga, run_id="r")
        child = await engine.status("r/sub")
    assert str(result.state) == "compensated" and result.failed_action == "bad"
    assert str(child.state) == "cancelled"
    assert journal.names("compensated") == ["c1"]
    assert str(child.actions["c2"].state) == "failed"


@pytest.mark.anyio
async def test_child_done_but_parent_not_told_is_undone_on_cancel(
    parent: CompiledSaga, db: str
) -> None:
    """The process dies after the child succeeded, before the parent recorded it; an
    operator then cancels the parent: the child is compensated all the same."""
    action, journal = step()
    async with open_store(db) as inner:
        crashing = CrashingStore(inner, 6)  # the parent's record of the child's success
        with pytest.raises((SimulatedCrash, BaseExceptionGroup)):
            async with Engine(crashing, actions={"step": action}) as engine:
                await engine.run(parent, run_id="r")
    async with Engine(db, actions={"step": action}) as engine:
        assert str((await engine.status("r/sub")).state) == "succeeded"
        result = await engine.cancel("r")
        child = await engine.status("r/sub")
    assert str(result.state) == "cancelled"
    assert str(child.state) == "compensated"
    # The parent never learnt of the child's success: `sub` failed (cancelled), and the
    # compensation phase undid its child all the same.
    assert str(result.actions["sub"].state) == "failed"
    assert journal.names("compensated") == ["c2-p1-out", "c1", "p1"]


@pytest.mark.anyio
async def test_abandoning_a_stuck_parent_abandons_its_stuck_child(
    db: str, parent: CompiledSaga
) -> None:
    # The child fails and cannot undo c1: both runs end stuck.
    action, _ = step(Script(fatal={"c2-p1-out"}, comp_fail={"c1": 99}))
    result, child, _ = await run(db, parent, action)
    assert (str(result.state), str(child.state)) == ("stuck", "stuck")
    async with Engine(db, actions={"step": action}) as engine:
        abandoned = await engine.abandon("r")
        child_after = await engine.status("r/sub")
    assert str(abandoned.state) == "abandoned"
    # Only its parent drives a child: left stuck, nothing would ever end it.
    assert str(child_after.state) == "abandoned"
