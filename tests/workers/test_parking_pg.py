"""Parked runs on PostgreSQL with real worker processes.

A run parked waiting for a signal is held by nobody; the signal (sent from a process that
drives nothing) makes it due, and a worker claims it and finishes it. A worker notices a
wait's timer running out and compensates. Twenty runs with one concurrency key on three
workers never overlap, as the log's timestamps tell, and run in submission order.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from sagactl.engine import ActionSpec, CompiledSaga, RetryPolicy
from sagactl.engine.api import Engine
from sagactl.engine.events import EventKind
from sagactl.engine.model import Concurrency
from sagactl.engine.signals import SignalRefused
from sagactl.engine.states import RunState
from sagactl.engine.store.postgres import PostgresStore

from .conftest import wait_for
from .effects import ACTIONS
from .test_workers import Workers, effects

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
def workers(pg_url: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(pg_url, tmp_path)
    try:
        yield group
    finally:
        group.close()


def _effect(name: str, *, needs: tuple[str, ...] = (), sleep: float = 0) -> ActionSpec:
    return ActionSpec(
        name=name,
        uses="effect",
        with_={"name": name, "sleep": sleep},
        needs=needs,
        depends_on=frozenset(needs),
        retry=RetryPolicy(attempts=1),
    )


def approval_saga(timeout: str | None = None) -> CompiledSaga:
    wait: dict[str, Any] = {"name": "approve", "schema": {"type": "string"}}
    if timeout is not None:
        wait["timeout"] = timeout
    return CompiledSaga(
        name="approval",
        version=1,
        actions={
            "prepare": _effect("prepare"),
            "approve": ActionSpec(
                name="approve",
                uses="wait.signal",
                with_=wait,
                needs=("prepare",),
                depends_on=frozenset({"prepare"}),
            ),
            "deploy": _effect("deploy", needs=("approve",)),
        },
    )


async def _state(engine: Engine, run_id: str) -> RunState:
    return (await engine.store.get_run(run_id)).state


async def test_a_worker_finishes_a_run_a_signal_woke(pg_url: str, workers: Workers) -> None:
    async with Engine(pg_url, actions=ACTIONS) as engine:
        parked = await engine.run(approval_saga())
    assert parked.state is RunState.WAITING and parked.exit_code == 0
    proc = workers.start(concurrency=2, poll=0.2)
    async with Engine(pg_url, actions=ACTIONS) as engine:
        store = engine.store
        assert isinstance(store, PostgresStore)
        record = await store.get_run(parked.run_id)
        assert (record.owner, record.state) == (None, RunState.WAITING)
        with pytest.raises(SignalRefused, match="is not of type 'string'"):
            await engine.signal(parked.run_id, "approve", 42)
        assert await _state(engine, parked.run_id) is RunState.WAITING
        sent = await engine.signal(parked.run_id, "approve", "yes")
        assert sent.state is RunState.WAITING  # this process drives nothing: a worker will

        async def finished() -> bool:
            return await _state(engine, parked.run_id) is RunState.SUCCEEDED

        await wait_for(finished, within=30, every=0.1)
        done = await engine.status(parked.run_id)
        by_action = {a: pid for _, a, pid in await effects(store)}
    assert done.actions["approve"].outputs == {"data": "yes"}
    assert by_action["deploy"] == proc.pid  # the worker process finished it


async def test_a_worker_compensates_a_wait_that_timed_out(pg_url: str, workers: Workers) -> None:
    workers.start(concurrency=2, poll=0.2)
    async with Engine(pg_url, actions=ACTIONS) as engine:
        run_id = await engine.start(approval_saga(timeout="1s"))

        async def settled() -> bool:
            return await _state(engine, run_id) is RunState.COMPENSATED

        await wait_for(settled, within=30, every=0.1)
        result = await engine.status(run_id)
        kinds = [(e.kind, e.action) for e in await engine.log(run_id)]
    assert (result.failed_action, result.code) == ("approve", "signal_timeout")
    assert (EventKind.RUN_WAITING, None) in kinds  # it was parked before the timer ran out
    assert (EventKind.ACTION_COMPENSATED, "prepare") in kinds


async def test_an_early_signal_is_consumed_by_a_worker(pg_url: str, workers: Workers) -> None:
    async with Engine(pg_url, actions=ACTIONS) as engine:
        run_id = await engine.start(approval_saga())
        await engine.signal(run_id, "approve", "early")
        workers.start(concurrency=2, poll=0.2)

        async def finished() -> bool:
            return await _state(engine, run_id) is RunState.SUCCEEDED

        await wait_for(finished, within=30, every=0.1)
        kinds = [e.kind for e in await engine.log(run_id)]
        assert await engine.store.pending_signals(run_id) == set()
    assert EventKind.RUN_WAITING not in kinds


def keyed_saga() -> CompiledSaga:
    return CompiledSaga(
        name="keyed",
        version=1,
        actions={"work": _effect("work", sleep=0.05)},
        inputs={"app": {"type": "string"}},
        concurrency=Concurrency(key="${{ inputs.app }}", limit=1),
    )


@pytest.mark.slow
async def test_twenty_runs_of_one_key_on_three_workers(pg_url: str, workers: Workers) -> None:
    """Never two at once (each run's first record after the last one's final record, by
    the log's timestamps), all in submission order, each claimed once."""
    saga = keyed_saga()
    procs = [workers.start(concurrency=4, poll=0.2) for _ in range(3)]
    async with Engine(pg_url, actions=ACTIONS) as engine:
        ids = [await engine.start(saga, {"app": "site"}) for _ in range(20)]
        other = await engine.start(saga, {"app": "other"})

        async def all_done() -> bool:
            done = await engine.store.list_runs(states=["succeeded"])
            return len(done) == 21

        await wait_for(all_done, within=120, every=0.2)
        spans = []
        for run_id in ids:
            log = await engine.log(run_id)
            start = next(e.at for e in log if e.kind is EventKind.RUN_STARTED)
            end = next(e.at for e in log if e.kind is EventKind.RUN_FINISHED)
            spans.append((start, end, run_id))
        other_start = next(e.at for e in await engine.log(other) if e.kind is EventKind.RUN_STARTED)
        store = engine.store
        assert isinstance(store, PostgresStore)
        done = await effects(store)
    assert sorted(spans) == spans, "runs started out of submission order"
    for (_, end, before), (start, _, after) in itertools.pairwise(spans):
        assert start >= end, f"{after} started before {before} finished"
    assert other_start < spans[-1][0]  # another key never waited behind this one
    assert sorted(r for r, _, _ in done) == sorted([*ids, other])  # each effect once
    claimed = [workers.stats(p)["claimed"] for p in procs if workers.stop(p) == 0]
    assert len(claimed) == 3 and sum(claimed) == 21


async def test_a_foreground_run_waits_for_its_key_and_workers_leave_it(
    pg_url: str,
) -> None:
    """While a run holds the key, a second one run in the foreground waits `queued`, held
    by its process (told so), and a detached third is not claimable; both go in order."""
    saga = keyed_saga()
    slow = CompiledSaga(
        name="keyed",
        version=1,
        actions={"work": _effect("work", sleep=1.0)},
        inputs={"app": {"type": "string"}},
        concurrency=Concurrency(key="${{ inputs.app }}", limit=1),
    )
    events: list[Any] = []
    async with (
        Engine(pg_url, actions=ACTIONS) as first,
        Engine(pg_url, actions=ACTIONS, on_event=events.append) as second,
    ):
        store = second.store
        assert isinstance(store, PostgresStore)
        async with anyio.create_task_group() as group:
            group.start_soon(functools.partial(first.run, slow, {"app": "a"}, run_id="one"))

            async def running() -> bool:
                runs = await store.list_runs(states=["running"])
                return [r.run_id for r in runs] == ["one"]

            await wait_for(running, within=10)
            group.start_soon(functools.partial(second.run, saga, {"app": "a"}, run_id="two"))

            async def queued() -> bool:
                return any(e.kind is EventKind.RUN_QUEUED for e in events)

            await wait_for(queued, within=10)
            third = await second.start(saga, {"app": "a"}, run_id="three")  # after "two"
            assert (await store.get_run("two")).owner is not None  # held by its process
            assert await store.claim_next(5) == []  # "two" is held, "three" not its turn
        assert await _state(first, "two") is RunState.SUCCEEDED
        (claimed,) = await store.claim_next(5)  # now "three" may go
        assert claimed.run_id == third
        await second.execute_claimed(claimed)
        assert await _state(second, third) is RunState.SUCCEEDED
