"""Issue 13 item 4 on PostgreSQL: no worker claims a paused run; `unpause` hands it back.

Workers run in this process over a real PostgreSQL schema; the operator is another engine
on its own store, as `sagactl pause` in another process would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga, RetryPolicy
from sagactl.engine.api import Engine
from sagactl.engine.events import Event, EventKind
from sagactl.engine.store.postgres import PostgresStore
from sagactl.engine.worker import Worker

from .conftest import wait_for
from .effects import ACTIONS, Effect, chain_saga
from .test_cli import sagactl

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


class Gate(Action):
    """Waits for `opened` (set by the test) before it completes; says when it started."""

    input_schema = {"type": "object"}
    output_schema = {"type": "object"}

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.opened = anyio.Event()

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.entered.set()
        await self.opened.wait()
        return {}

    async def compensate(
        self, ctx: ActionContext, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        return None


def gated_saga() -> CompiledSaga:
    """`gate`, then the effect `b`."""
    once = RetryPolicy(attempts=1, backoff=1.0)
    specs = {
        "gate": ActionSpec(name="gate", uses="gate", with_={}, retry=once),
        "b": ActionSpec(
            name="b",
            uses="effect",
            with_={"name": "b"},
            needs=("gate",),
            depends_on=frozenset({"gate"}),
            retry=once,
        ),
    }
    return CompiledSaga(name="gated", version=1, actions=specs, inputs={})


async def effects(store: PostgresStore, run_id: str) -> list[str]:
    async with store.transaction() as tx:
        rows = await tx.fetchall(
            "SELECT action FROM effects WHERE run_id = ? ORDER BY at", (run_id,)
        )
    return [str(row[0]) for row in rows]


class TestPausedRunsOnWorkers:
    async def test_a_worker_never_claims_a_paused_run(self, pg_url: str) -> None:
        """Of three queued runs one is paused: the worker drives the two others, the paused
        one stays unheld and unclaimable until `unpause`, and then a worker finishes it."""
        saga = chain_saga(("a", 0), ("b", 0))
        async with PostgresStore(pg_url) as store:
            async with Engine(store, actions=ACTIONS) as operator:
                ids = [await operator.start(saga) for _ in range(3)]
                assert (await operator.pause(ids[1])).state == "paused"
            worker = Worker(pg_url, concurrency=4, actions=ACTIONS, poll=0.1)
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)

                async def two_done() -> bool:
                    return len(await store.list_runs(states=["succeeded"])) == 2

                await wait_for(two_done, within=30)
                paused = await store.get_run(ids[1])
                assert (paused.state, paused.owner) == ("paused", None)
                assert await store.claim_next(5) == []  # nothing claimable is left
                assert worker.stats.claimed == 2
                assert await effects(store, ids[1]) == []
                async with Engine(store, actions=ACTIONS) as operator:
                    handed = await operator.unpause(ids[1], drive=False)
                # Handed back unheld: released with a NOTIFY, so the worker may have
                # claimed it before `unpause` read it back; never held by the operator.
                assert handed.state == "running" and handed.owner != store.token

                async def all_done() -> bool:
                    return len(await store.list_runs(states=["succeeded"])) == 3

                await wait_for(all_done, within=30)
                worker.stop()
            assert worker.stats.claimed == 3
            assert await effects(store, ids[1]) == ["a", "b"]

    async def test_a_run_paused_under_a_worker_is_released_and_left_alone(
        self, pg_url: str
    ) -> None:
        """A worker holds the run inside `gate` when it is paused from elsewhere: `gate`
        finishes, `b` never starts, the lease is given up and no worker claims the run;
        unpaused, a worker runs `b` once."""
        gate = Gate()
        actions = {"effect": Effect(), "gate": gate}
        heard = anyio.Event()

        def listen(event: Event) -> None:
            if event.kind is EventKind.RUN_PAUSING:
                heard.set()

        async with PostgresStore(pg_url) as store:
            async with Engine(store, actions=actions) as operator:
                run_id = await operator.start(gated_saga())
            worker = Worker(pg_url, actions=actions, poll=0.1, on_event=listen)
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)
                await gate.entered.wait()
                async with Engine(store, actions=actions) as operator:
                    asked = await operator.pause(run_id)
                assert asked.state == "running" and asked.owner is not None
                await heard.wait()
                gate.opened.set()

                async def released() -> bool:
                    run = await store.get_run(run_id)
                    return run.state == "paused" and run.owner is None

                await wait_for(released, within=30)
                assert await store.claim_next(5) == []
                assert await effects(store, run_id) == []
                async with Engine(store, actions=actions) as operator:
                    await operator.unpause(run_id, drive=False)

                async def finished() -> bool:
                    return (await store.get_run(run_id)).state == "succeeded"

                await wait_for(finished, within=30)
                worker.stop()
            assert await effects(store, run_id) == ["b"]
            assert worker.stats.claimed == 2  # once to pause it, once after unpause


class TestCommandsOnPostgres:
    async def test_unpause_leaves_the_run_to_workers_and_pause_by_saga(self, pg_url: str) -> None:
        """On PostgreSQL `sagactl unpause` drives nothing itself: the run is runnable and
        unheld, for a worker. `pause --saga` lists (dry run) then pauses that saga's runs."""
        saga = chain_saga(("a", 0))
        async with Engine(pg_url, actions=ACTIONS) as engine:
            paused = await engine.start(saga)
            await engine.pause(paused)
            queued = sorted([await engine.start(saga) for _ in range(2)])
        done = sagactl("unpause", paused, "--db", pg_url)
        assert (done.returncode, done.stdout) == (0, f"{paused} running\n"), done.stderr
        listed = sagactl("pause", "--saga", "chain", "--dry-run", "--db", pg_url)
        assert listed.returncode == 0, listed.stderr
        assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == sorted(
            [paused, *queued]
        )
        assert listed.stderr == "3 runs match 'saga=chain,state=queued|running'\n"
        acted = sagactl("pause", "--saga", "chain", "--yes", "--db", pg_url)
        assert acted.returncode == 0, acted.stderr
        async with PostgresStore(pg_url) as store:
            runs = {r.run_id: (r.state, r.owner) for r in await store.list_runs()}
        assert runs == {r: ("paused", None) for r in [paused, *queued]}
