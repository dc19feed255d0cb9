"""Fan-out: a `for_each` action runs once per element, in order, limited, compensated."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import anyio
import pytest
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga, RetryPolicy
from sagactl.engine.api import Engine, RunResult
from sagactl.engine.events import Event, EventKind
from sagactl.engine.testing import CrashRehearsalFailed, rehearse_crashes

from .sagas import FakeClock, Journal, Script, Step

pytestmark = pytest.mark.anyio

K = EventKind
NAMES = ["d0", "d1", "d2", "d3", "d4"]


def fan_saga(
    *,
    max_parallel: int | None = None,
    attempts: int = 1,
    extra: Mapping[str, ActionSpec] = {},
    targets: Mapping[str, Any] | None = None,
) -> CompiledSaga:
    """prep -> deploy (for_each over inputs.targets, `name: item`) -> after."""
    retry = RetryPolicy(attempts=attempts, backoff=1.0)
    actions = {
        "prep": ActionSpec(name="prep", uses="step", with_={"name": "prep"}, retry=retry),
        "deploy": ActionSpec(
            name="deploy",
            uses="step",
            with_={"name": "${{ item }}"},
            needs=("prep",),
            depends_on=frozenset({"prep"}),
            for_each="${{ inputs.targets }}",
            max_parallel=max_parallel,
            retry=retry,
        ),
        "after": ActionSpec(
            name="after",
            uses="step",
            with_={"name": "after"},
            needs=("deploy",),
            depends_on=frozenset({"deploy"}),
            retry=retry,
        ),
        **extra,
    }
    return CompiledSaga(
        name="fan", version=1, actions=actions, inputs={"targets": targets or {"type": "array"}}
    )


async def run(
    db: str,
    saga: CompiledSaga,
    targets: Any,
    script: Script | None = None,
    **options: Any,
) -> tuple[RunResult, Journal, Step, list[Event]]:
    journal, events = Journal(), []
    step = Step(journal, script)
    options.setdefault("clock", FakeClock())
    handlers = [events.append, *options.pop("on_event", [])]
    async with Engine(db, actions={"step": step}, on_event=handlers, **options) as engine:
        result = await engine.run(saga, {"targets": targets}, run_id="r1")
    return result, journal, step, events


def element_states(result: RunResult, action: str = "deploy") -> list[str]:
    elements = result.actions[action].elements or {}
    return [str(elements[i].state) for i in sorted(elements)]


class TestForward:
    async def test_each_element_runs_once_and_results_are_in_order(self, db: str) -> None:
        result, journal, step, _ = await run(db, fan_saga(), NAMES)
        assert result.ok
        assert sorted(journal.names("done")) == sorted(["prep", *NAMES, "after"])
        deploy = result.actions["deploy"]
        assert deploy.outputs == {"results": [{"value": f"{n}-out"} for n in NAMES]}
        assert deploy.count == 5 and element_states(result) == ["succeeded"] * 5
        keys = {name: key for name, _, key in step.contexts}
        assert [keys[n] for n in NAMES] == [f"r1/deploy/{i}" for i in range(5)]
        assert keys["prep"] == "r1/prep"

    async def test_empty_list_succeeds_with_no_results(self, db: str) -> None:
        result, journal, _, events = await run(db, fan_saga(), [])
        assert result.ok and result.actions["deploy"].outputs == {"results": []}
        assert journal.names("done") == ["prep", "after"]
        assert not [e for e in events if e.kind is K.ELEMENT_STARTED]

    async def test_max_parallel_limits_elements(self, db: str) -> None:
        """With max_parallel 2, never more than two elements execute at once; the run's
        max_parallel (32) would let all five."""
        names = [f"e{i}" for i in range(6)]
        script = Script(sleep=dict.fromkeys(names, 0.02))
        result, journal, _, _ = await run(db, fan_saga(max_parallel=2), names, script)
        assert result.ok
        busy = peak = 0
        for what, name, _ in journal.entries:
            if name in names:
                busy += {"execute": 1, "done": -1}[what]
                peak = max(peak, busy)
        assert peak == 2

    async def test_elements_overlap_without_max_parallel(self, db: str) -> None:
        names = [f"e{i}" for i in range(6)]
        script = Script(sleep=dict.fromkeys(names, 0.02))
        result, journal, _, _ = await run(db, fan_saga(), names, script)
        order = [(w, a) for w, a, _ in journal.entries]
        assert result.ok and order.index(("execute", "e5")) < order.index(("done", "e0"))

    async def test_an_element_is_retried_alone(self, db: str) -> None:
        result, journal, _, events = await run(
            db, fan_saga(attempts=3), NAMES, Script(flaky={"d2": 2})
        )
        assert result.ok
        assert journal.names("execute").count("d2") == 3
        assert journal.names("execute").count("d1") == 1
        elements = result.actions["deploy"].elements or {}
        assert elements[2].attempts == 3 and elements[1].attempts == 1
        failed = [e.data["index"] for e in events if e.kind is K.ELEMENT_FAILED]
        assert failed == [2, 2]

    async def test_not_a_list_at_run_time_is_bad_input(self, db: str) -> None:
        untyped = fan_saga(targets={"description": "any JSON"})
        result, journal, _, _ = await run(db, untyped, "d0,d1")
        assert result.state == "compensated" and result.exit_code == 2
        assert result.failed_action == "deploy"
        assert "for_each: ${{ inputs.targets }} is str, not a list" in (result.error or "")
        assert journal.names("compensated") == ["prep"]


class TestFailure:
    async def test_failed_element_cancels_the_rest_and_completed_are_undone(self, db: str) -> None:
        """d2 fails while d3 hangs: d3 is cancelled, d4 never starts; d1 and d0 are
        compensated (latest first), then prep; `after` never runs."""
        script = Script(fatal={"d2"}, hang={"d3"}, sleep={"d2": 0.01})
        saga = fan_saga(max_parallel=2)
        result, journal, _, _ = await run(db, saga, NAMES, script)
        assert result.state == "compensated" and result.failed_action == "deploy"
        assert result.error == "element 2: FatalError: d2 failed"
        assert journal.names("compensated") == ["d1", "d0", "prep"]
        assert "after" not in journal.names("execute") and "d4" not in journal.names("execute")
        assert element_states(result) == [
            "compensated",
            "compensated",
            "failed",
            "failed",
        ]
        elements = result.actions["deploy"].elements or {}
        assert elements[3].code == "cancelled" and elements[2].code == "fatal"
        # The action stays failed (an action never undoes a failure); its elements are undone.
        assert str(result.actions["deploy"].state) == "failed"

    async def test_a_sibling_failure_interrupts_the_elements(self, db: str) -> None:
        """Another action fails while elements run: the running ones are interrupted, the
        completed ones undone."""
        boom = ActionSpec(
            name="boom",
            uses="step",
            with_={"name": "boom"},
            needs=("prep",),
            depends_on=frozenset({"prep"}),
            retry=RetryPolicy(attempts=1),
        )
        d0_done = anyio.Event()  # boom fails only once d0's success is in the log

        def on_event(event: Event) -> None:
            if event.kind is EventKind.ELEMENT_SUCCEEDED:
                d0_done.set()

        script = Script(fatal={"boom"}, gates={"boom": d0_done}, hang={"d1"})
        saga = fan_saga(extra={"boom": boom})
        result, journal, _, _ = await run(db, saga, ["d0", "d1"], script, on_event=[on_event])
        assert result.state == "compensated" and result.failed_action == "boom"
        assert journal.names("compensated") == ["d0", "prep"]
        elements = result.actions["deploy"].elements or {}
        assert str(elements[0].state) == "compensated"
        assert (str(elements[1].state), elements[1].code) == ("failed", "interrupted")

    async def test_compensation_of_an_element_failing_leaves_the_run_stuck(self, db: str) -> None:
        script = Script(fatal={"after"}, comp_fail={"d1": 99})
        result, journal, _, _ = await run(db, fan_saga(), ["d0", "d1", "d2"], script)
        assert result.state == "stuck"
        assert result.error == "compensation of deploy failed: RuntimeError: cannot undo d1"
        assert journal.names("compensated") == ["d2"]
        assert element_states(result) == ["succeeded", "compensating", "compensated"]

    async def test_succeeded_fan_out_is_undone_in_reverse_when_a_later_action_fails(
        self, db: str
    ) -> None:
        result, journal, _, _ = await run(db, fan_saga(), NAMES, Script(fatal={"after"}))
        assert result.state == "compensated"
        assert journal.names("compensated") == [*reversed(NAMES), "prep"]
        assert element_states(result) == ["compensated"] * 5


class TestItemFields:
    async def test_item_fields_and_index_reach_the_inputs(self, db: str) -> None:
        seen: list[dict[str, Any]] = []

        class Record(Action):
            input_schema = {"type": "object"}
            output_schema = {"type": "object"}

            async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> Any:
                seen.append(dict(inputs))
                return {"host": inputs["host"]}

        class Collect(Action):
            input_schema = {"type": "object", "properties": {"all": {"type": "array"}}}
            output_schema = {"type": "object"}

            async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> Any:
                return {"hosts": [r["host"] for r in inputs["all"]]}

        saga = CompiledSaga(
            name="fields",
            version=1,
            inputs={"targets": {"type": "array"}},
            actions={
                "each": ActionSpec(
                    name="each",
                    uses="record",
                    for_each="${{ inputs.targets }}",
                    with_={
                        "host": "${{ item.host }}",
                        "at": "${{ index }}",
                        "tag": "n${{ index }}",
                    },
                ),
                "collect": ActionSpec(
                    name="collect",
                    uses="collect",
                    with_={"all": "${{ actions.each.outputs.results }}"},
                    depends_on=frozenset({"each"}),
                ),
            },
        )
        targets = [{"host": "a", "port": 1}, {"host": "b", "port": 2}]
        async with Engine(db, actions={"record": Record(), "collect": Collect()}) as engine:
            result = await engine.run(saga, {"targets": targets})
        assert result.ok
        assert sorted(seen, key=lambda s: s["at"]) == [
            {"host": "a", "at": 0, "tag": "n0"},
            {"host": "b", "at": 1, "tag": "n1"},
        ]
        assert result.actions["collect"].outputs == {"hosts": ["a", "b"]}

    async def test_a_missing_item_field_fails_the_element_as_bad_input(self, db: str) -> None:
        saga = CompiledSaga(
            name="fields",
            version=1,
            inputs={"targets": {"type": "array"}},
            actions={
                "each": ActionSpec(
                    name="each",
                    uses="step",
                    for_each="${{ inputs.targets }}",
                    with_={"name": "${{ item.name }}"},
                ),
            },
        )
        async with Engine(db, actions={"step": Step(Journal())}) as engine:
            result = await engine.run(saga, {"targets": [{"name": "x"}, {"nom": "y"}]})
        assert result.state == "compensated" and result.exit_code == 2
        assert result.error == "element 1: item has no field 'name'"


class TestLarge:
    async def test_ten_thousand_elements(self, db: str) -> None:
        class Noop(Action):
            output_schema = {"type": "object"}

            async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> Any:
                return {"i": inputs["i"]}

        saga = CompiledSaga(
            name="big",
            version=1,
            inputs={"n": {"type": "array"}},
            actions={
                "each": ActionSpec(
                    name="each", uses="noop", for_each="${{ inputs.n }}", with_={"i": "${{ item }}"}
                )
            },
        )
        async with Engine(db, actions={"noop": Noop()}) as engine:
            result = await engine.run(saga, {"n": list(range(10_000))})
            log = await engine.store.read_log(result.run_id)
        assert result.ok
        assert result.actions["each"].outputs == {"results": [{"i": i} for i in range(10_000)]}
        started = [r.data["index"] for r in log if r.kind is K.ELEMENT_STARTED]
        assert sorted(started) == list(range(10_000))


class TestCrashes:
    """A crash at every log write, then a resume: the run ends as a clean one, and no
    element that completed (or was compensated) runs again."""

    async def test_success(self) -> None:
        rehearsal = await rehearse_crashes(
            fan_saga(max_parallel=2), {"step": Step(Journal())}, {"targets": NAMES[:3]}
        )
        assert rehearsal.expected.state == "succeeded"
        assert rehearsal.expected.elements == {"deploy": ("succeeded",) * 3}
        assert rehearsal.writes >= 6

    async def test_failed_element_compensates(self) -> None:
        script = Script(fatal={"d2"})
        rehearsal = await rehearse_crashes(
            fan_saga(), {"step": Step(Journal(), script)}, {"targets": NAMES[:4]}
        )
        assert rehearsal.expected.state == "compensated"
        assert rehearsal.expected.elements == {"deploy": ("compensated", "compensated", "failed")}

    async def test_later_failure_undoes_every_element(self) -> None:
        script = Script(fatal={"after"})
        rehearsal = await rehearse_crashes(
            fan_saga(), {"step": Step(Journal(), script)}, {"targets": NAMES[:3]}
        )
        assert rehearsal.expected.elements == {"deploy": ("compensated",) * 3}

    async def test_a_redone_element_is_caught(self) -> None:
        """The rehearsal's own check: an element started again after its success fails it."""
        from sagactl.engine.testing.rehearsal import _check_nothing_redone

        done = Event("r", K.ELEMENT_SUCCEEDED, "deploy", {"index": 1, "outputs": {}}, seq=5)
        again = Event("r", K.ELEMENT_STARTED, "deploy", {"index": 1, "attempt": 2}, seq=6)
        other = Event("r", K.ELEMENT_STARTED, "deploy", {"index": 2, "attempt": 1}, seq=7)
        _check_nothing_redone([done], [done, other], "here")
        with pytest.raises(CrashRehearsalFailed, match="element 1 of deploy succeeded"):
            _check_nothing_redone([done], [done, again], "here")


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A fresh schema in this branch's own PostgreSQL database, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    server = os.environ.get("SAGACTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=3) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'fanout_pg'").fetchone():
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute("CREATE DATABASE fanout_pg")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {server}: {exc}")
    url = server.rsplit("/", 1)[0] + "/fanout_pg"
    schema = f"fan_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.postgres
class TestPostgres:
    async def test_success_and_failure_fold_from_the_log(self, pg_db: str) -> None:
        """On PostgreSQL the elements are logged and folded as on SQLite."""
        result, _, _, _ = await run(pg_db, fan_saga(), NAMES[:3])
        assert result.ok and element_states(result) == ["succeeded"] * 3
        journal = Journal()
        script = Script(fatal={"d1"})
        async with Engine(pg_db, actions={"step": Step(journal, script)}) as engine:
            failed = await engine.run(fan_saga(max_parallel=1), {"targets": NAMES[:3]})
            folded = await engine.status(failed.run_id)
        assert failed.state == "compensated" and journal.names("compensated") == ["d0", "prep"]
        assert element_states(folded) == ["compensated", "failed"]
        assert folded.to_json()["actions"]["deploy"] == failed.to_json()["actions"]["deploy"]
