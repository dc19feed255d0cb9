"""Parked runs on SQLite through the API: `wait.signal` and concurrency keys.

A run waiting for a signal is parked `waiting`, held by nobody; `Engine.signal` checks the
data, keeps it, and drives the run on. A timeout fails the wait and compensates. Runs with
one concurrency key take turns in submission order, each engine its own store and owner.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from sagactl.engine import ActionSpec, CompiledSaga, Engine, RetryPolicy
from sagactl.engine.events import Event, EventKind
from sagactl.engine.model import Concurrency
from sagactl.engine.signals import SignalRefused
from sagactl.engine.states import ActionState, RunState
from sagactl.engine.testing import rehearse_crashes

from .sagas import Journal, Script, Step

pytestmark = pytest.mark.anyio

APPROVAL = {"type": "object", "required": ["by"], "properties": {"by": {"type": "string"}}}


def approval_saga(*, timeout: str | None = "1h", before: str | None = "prepare") -> CompiledSaga:
    """`prepare` (compensable) -> `approve` (wait.signal) -> `deploy`, whose name input is
    the approver: the signal's data reaches the action after the wait."""
    wait: dict[str, Any] = {"name": "approve", "schema": APPROVAL}
    if timeout is not None:
        wait["timeout"] = timeout
    specs = {
        "approve": ActionSpec(
            name="approve",
            uses="wait.signal",
            with_=wait,
            depends_on=frozenset({before}) if before else frozenset(),
            needs=(before,) if before else (),
        ),
        "deploy": ActionSpec(
            name="deploy",
            uses="step",
            with_={"name": "${{ actions.approve.outputs.data }}"},
            depends_on=frozenset({"approve"}),
            retry=RetryPolicy(attempts=1),
        ),
    }
    if before:
        specs[before] = ActionSpec(
            name=before, uses="step", with_={"name": before}, retry=RetryPolicy(attempts=1)
        )
    return CompiledSaga(name="approval", version=1, actions=specs)


class ByName(Step):
    """A step whose `name` may be the approval object: it journals who approved."""

    input_schema = {"type": "object", "required": ["name"]}

    async def execute(self, ctx: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
        name = inputs["name"]
        if isinstance(name, Mapping):
            self.journal.add("execute", f"deploy by {name['by']}")
            return {"value": "deployed"}
        return await super().execute(ctx, inputs)


def engine(db: str, journal: Journal, **options: Any) -> Engine:
    return Engine(db, actions={"step": ByName(journal, Script())}, **options)


async def test_a_parked_run_is_held_by_nobody_and_a_signal_finishes_it(db: str) -> None:
    journal = Journal()
    saga = approval_saga()
    async with engine(db, journal) as first:
        parked = await first.run(saga)
    assert parked.state is RunState.WAITING
    assert parked.exit_code == 0
    assert parked.actions["approve"].state is ActionState.RUNNING
    assert [dict(w)["signal"] for w in parked.waits] == ["approve"]
    async with engine(db, journal) as second:
        record = await second.store.get_run(parked.run_id)
        assert record.owner is None and record.wake_at is not None
        done = await second.signal(parked.run_id, "approve", {"by": "ann"})
    assert done.state is RunState.SUCCEEDED
    assert done.actions["approve"].outputs == {"data": {"by": "ann"}}
    assert journal.names("execute") == ["prepare", "deploy by ann"]


async def test_bad_data_is_refused_and_the_run_keeps_waiting(db: str) -> None:
    journal = Journal()
    async with engine(db, journal) as eng:
        run_id = (await eng.run(approval_saga())).run_id
        with pytest.raises(SignalRefused, match=r"signal approve: data\['by'\]: 3 is not"):
            await eng.signal(run_id, "approve", {"by": 3})
        with pytest.raises(SignalRefused, match="waits for no signal 'nope'"):
            await eng.signal(run_id, "nope", None)
        assert await eng.store.pending_signals(run_id) == set()
        assert (await eng.status(run_id)).state is RunState.WAITING
        done = await eng.signal(run_id, "approve", {"by": "bob"})
        assert done.state is RunState.SUCCEEDED
        with pytest.raises(SignalRefused, match="has finished"):
            await eng.signal(run_id, "approve", {"by": "bob"})
    assert journal.names("execute") == ["prepare", "deploy by bob"]


async def test_a_timeout_fails_the_wait_and_compensates(db: str) -> None:
    journal = Journal()
    async with engine(db, journal) as eng:
        run_id = (await eng.run(approval_saga(timeout="300ms"))).run_id
        assert (await eng.resume_all()) == []  # not due yet: nothing to resume
        await anyio.sleep(0.4)
        (result,) = await eng.resume_all()  # the timer ran out: the run is due
    assert result.run_id == run_id
    assert result.state is RunState.COMPENSATED
    assert result.failed_action == "approve"
    assert result.code == "signal_timeout"
    assert journal.names("compensated") == ["prepare"]
    assert "deploy" not in journal.names("execute")


async def test_a_signal_sent_before_the_wait_is_kept_and_consumed(db: str) -> None:
    journal, script = Journal(), Script()
    gate = script.gates["prepare"] = anyio.Event()
    script.entered["prepare"] = entered = anyio.Event()
    async with Engine(db, actions={"step": ByName(journal, script)}) as eng:
        run_id = await eng.start(approval_saga())
        early = await eng.signal(run_id, "approve", {"by": "early"})  # still queued
        assert early.state is RunState.QUEUED
        with pytest.raises(SignalRefused, match="was sent signal 'approve' before"):
            await eng.signal(run_id, "approve", {"by": "twice"})
        async with anyio.create_task_group() as group:

            async def resume() -> None:
                results.append((await eng.resume(run_id)).state)

            results: list[RunState] = []
            group.start_soon(resume)
            await entered.wait()  # running, not yet waiting: the signal is already kept
            gate.set()
        assert results == [RunState.SUCCEEDED]
        log = await eng.log(run_id)
        assert await eng.store.pending_signals(run_id) == set()
    assert EventKind.RUN_WAITING not in [e.kind for e in log]  # never parked
    assert journal.names("execute") == ["prepare", "deploy by early"]


async def test_a_waiting_run_can_be_cancelled(db: str) -> None:
    journal = Journal()
    async with engine(db, journal) as eng:
        run_id = (await eng.run(approval_saga(timeout=None))).run_id
        assert (await eng.status(run_id)).waits[0]["deadline"] is None
        cancelled = await eng.cancel(run_id)
    assert cancelled.state is RunState.CANCELLED
    assert journal.names("compensated") == ["prepare"]


def keyed_saga(limit: int = 1) -> CompiledSaga:
    specs = {
        "work": ActionSpec(
            name="work", uses="step", with_={"name": "${{ inputs.app }}"}, retry=RetryPolicy(1)
        )
    }
    return CompiledSaga(
        name="keyed",
        version=1,
        actions=specs,
        inputs={"app": {"type": "string"}},
        concurrency=Concurrency(key="app-${{ inputs.app }}", limit=limit),
    )


async def test_runs_with_one_key_take_turns_across_engines(db: str) -> None:
    """Three engines (three owners of one file) run the same key: each waits its turn,
    is told so, and they run one at a time in submission order; another key is free."""
    journal, script = Journal(), Script()
    script.sleep = {"a": 0.2}
    events: list[Event] = []
    order: list[str] = []
    saga = keyed_saga()

    async def one(app: str, run_id: str) -> None:
        actions = {"step": Step(journal, script)}
        async with Engine(db, actions=actions, on_event=events.append) as eng:
            result = await eng.run(saga, {"app": app}, run_id=run_id)
        assert result.state is RunState.SUCCEEDED
        order.append(run_id)

    async with anyio.create_task_group() as group:
        for run_id in ("r1", "r2", "r3"):
            group.start_soon(one, "a", run_id)
            await anyio.sleep(0.05)  # submitted in this order
        group.start_soon(one, "b", "other")
    runs = [e for e in events if e.kind is EventKind.RUN_QUEUED]
    assert {e.run_id for e in runs} == {"r2", "r3"}
    assert all(e.data["key"] == "app-a" for e in runs)
    assert order.index("other") < order.index("r2")  # key b never waited for key a
    starts = {e.run_id: e.at for e in events if e.kind is EventKind.RUN_STARTED}
    ends = {e.run_id: e.at for e in events if e.kind is EventKind.RUN_FINISHED}
    assert ends["r1"] <= starts["r2"] and ends["r2"] <= starts["r3"]
    async with Engine(db) as eng:
        record = await eng.store.get_run("r3")
    assert record.concurrency_key == "app-a"


async def test_a_queued_run_keeps_its_place_and_a_cancel_frees_it(db: str) -> None:
    journal, script = Journal(), Script()
    gate = script.gates["a"] = anyio.Event()
    script.entered["a"] = entered = anyio.Event()
    saga = keyed_saga()
    async with Engine(db, actions={"step": Step(journal, script)}) as eng:
        async with anyio.create_task_group() as group:
            group.start_soon(functools.partial(eng.run, saga, {"app": "a"}, run_id="first"))
            await entered.wait()
            second = await eng.start(saga, {"app": "a"}, run_id="second")
            turn = await eng.store.turn(second)
            assert turn is not None and (turn.ahead, turn.admitted) == (1, False)
            assert (await eng.cancel(second)).state is RunState.CANCELLED  # never waited
            third = await eng.start(saga, {"app": "a"}, run_id="third")
            assert (await eng.store.turn(third)).ahead == 1  # type: ignore[union-attr]
            gate.set()
        assert (await eng.store.turn(third)).admitted  # type: ignore[union-attr]
        assert (await eng.resume(third)).state is RunState.SUCCEEDED


async def test_a_signal_after_the_timeout_comes_too_late(db: str) -> None:
    """The late signal wakes the run, which notices its timer ran out and compensates."""
    journal = Journal()
    async with engine(db, journal) as eng:
        run_id = (await eng.run(approval_saga(timeout="300ms"))).run_id
        await anyio.sleep(0.4)
        late = await eng.signal(run_id, "approve", {"by": "late"})
        assert await eng.store.pending_signals(run_id) == {"approve"}  # never consumed
    assert late.state is RunState.COMPENSATED
    assert late.code == "signal_timeout"
    assert journal.names("compensated") == ["prepare"]


async def test_a_keyed_saga_survives_a_crash_at_every_write() -> None:
    """The law of every saga (crash at any log write, resume, same end, nothing twice)
    holds when the run first waits for its turn on its key."""
    saga = CompiledSaga(
        name="keyed-chain",
        version=1,
        actions={
            "a": ActionSpec(name="a", uses="step", with_={"name": "a"}, retry=RetryPolicy(1)),
            "b": ActionSpec(
                name="b",
                uses="step",
                with_={"name": "b"},
                needs=("a",),
                depends_on=frozenset({"a"}),
                retry=RetryPolicy(1),
            ),
        },
        inputs={"app": {"type": "string"}},
        concurrency=Concurrency(key="${{ inputs.app }}"),
    )
    rehearsal = await rehearse_crashes(saga, {"step": Step(Journal())}, {"app": "x"})
    assert rehearsal.expected.state == "succeeded"
    assert rehearsal.writes >= 3
