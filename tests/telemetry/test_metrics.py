"""`sagactl worker --metrics-port`: scrape a real worker's Prometheus text after a known
workload on PostgreSQL, and check every count."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga, FatalError, RetryPolicy
from sagactl.engine.api import Engine
from sagactl.engine.worker import Worker

from ..workers.conftest import pg_url as pg_url
from ..workers.conftest import wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Step(Action):
    """Succeeds, fails (`fail`), and undoes itself unless `undo_fails`."""

    input_schema = {"type": "object"}

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if inputs.get("fail"):
            raise FatalError("failed on purpose")
        return {}

    async def compensate(
        self, ctx: ActionContext, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        if inputs.get("undo_fails"):
            raise FatalError("cannot be undone")


def saga(name: str, **steps: dict[str, Any]) -> CompiledSaga:
    specs, previous = {}, None
    for step, with_ in steps.items():
        needs = (previous,) if previous else ()
        specs[step] = ActionSpec(
            name=step,
            uses="step",
            with_=with_,
            needs=needs,
            depends_on=frozenset(needs),
            retry=RetryPolicy(attempts=1),
        )
        previous = step
    return CompiledSaga(name=name, version=1, actions=specs, inputs={})


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_scrape_after_a_known_workload(pg_url: str) -> None:
    """3 runs succeed, 1 compensates, 1 gets stuck: every counter and gauge exact."""
    ok = saga("ok", a={}, b={})
    undo = saga("undo", a={}, b={"fail": True})
    stuck = saga("stuck", a={"undo_fails": True}, b={"fail": True})
    actions = {"step": Step()}
    worker = Worker(pg_url, actions=actions, metrics_port=0, poll=0.1, prune=False)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        await worker.started.wait()
        async with Engine(pg_url, actions=actions) as engine:
            for s in (ok, ok, ok, undo, stuck):
                await engine.start(s)

            async def all_ended() -> bool:
                runs = await engine.store.list_runs()
                return len(runs) == 5 and all(r.finished or r.state == "stuck" for r in runs)

            await wait_for(all_ended, within=30)
        assert worker.metrics_bound is not None
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"http://127.0.0.1:{worker.metrics_bound}/metrics")
            missing = await client.get(f"http://127.0.0.1:{worker.metrics_bound}/nope")
        worker.stop()
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    assert missing.status_code == 404
    found = samples(reply.text)
    assert value(found, "sagactl_runs_started_total", saga="ok") == 3
    assert value(found, "sagactl_runs_started_total", saga="undo") == 1
    assert value(found, "sagactl_runs_finished_total", saga="ok", state="succeeded") == 3
    assert value(found, "sagactl_runs_finished_total", saga="undo", state="compensated") == 1
    assert value(found, "sagactl_runs_finished_total", saga="stuck", state="stuck") == 1
    assert value(found, "sagactl_action_attempts_total", saga="ok", action="b") == 3
    assert value(found, "sagactl_action_attempts_total", saga="undo", action="b") == 1
    count = "sagactl_action_duration_seconds_count"
    assert value(found, count, saga="ok", action="a", outcome="succeeded") == 3
    assert value(found, count, saga="undo", action="b", outcome="failed") == 1
    compensations = "sagactl_compensations_total"
    assert value(found, compensations, saga="undo", action="a", outcome="compensated") == 1
    assert value(found, compensations, saga="stuck", action="a", outcome="failed") == 1
    assert value(found, "sagactl_claims_total") == 5
    assert value(found, "sagactl_takeovers_total") == 0
    assert value(found, "sagactl_lost_leases_total") == 0
    assert value(found, "sagactl_runs", saga="ok", state="succeeded") == 3
    assert value(found, "sagactl_runs", saga="stuck", state="stuck") == 1
    assert value(found, "sagactl_stuck_runs", saga="stuck", older_than="0s") == 1
    assert value(found, "sagactl_stuck_runs", saga="stuck", older_than="1h") == 0
    assert 0 <= value(found, "sagactl_oldest_stuck_run_age_seconds", saga="stuck") < 60
    assert not [k for k in found if k[0] == "sagactl_oldest_unfinished_run_age_seconds"]


async def test_worker_prunes_in_the_background(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker prunes runs past their retention without being asked, and counts them."""
    monkeypatch.setenv("SAGACTL_PRUNE_INTERVAL", "0.1")
    monkeypatch.setenv("SAGACTL_RETENTION", "1d")
    actions = {"step": Step()}
    async with Engine(pg_url, actions=actions) as engine:
        old = [(await engine.run(saga("ok", a={}))).run_id for _ in range(3)]
        young = (await engine.run(saga("ok", a={}))).run_id
        async with engine.store.transaction() as tx:
            for run_id in old:
                await tx.execute(
                    "UPDATE runs SET finished = finished - 2 * 86400 WHERE run_id = ?", (run_id,)
                )
        worker = Worker(pg_url, actions=actions, metrics_port=0, poll=0.1)
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)

            async def pruned() -> bool:
                return [r.run_id for r in await engine.store.list_runs()] == [young]

            await wait_for(pruned, within=20)
            worker.stop()
        assert worker.metrics is not None
        assert worker.metrics.registry.get_sample_value("sagactl_runs_pruned_total") == 3
        assert all([await engine.store.tombstone(r) is not None for r in old])


class Held(Action):
    """Waits until `release` is set (a run a worker has in hand)."""

    def __init__(self) -> None:
        self.running = anyio.Event()
        self.release = anyio.Event()

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.running.set()
        await self.release.wait()
        return {}


async def test_a_hand_back_is_a_claim_and_an_expired_lease_a_takeover(pg_url: str) -> None:
    """A worker stopped at once hands its run back: the next worker counts a claim, no
    takeover. A run whose holder let its lease run out is counted as a takeover."""
    from sagactl.engine.store.postgres import PostgresStore

    held = Held()
    actions = {"step": held}
    async with Engine(pg_url, actions=actions) as engine:
        handed = await engine.start(saga("held", a={}))
        first = Worker(pg_url, actions=actions, poll=0.1, grace=0)
        async with anyio.create_task_group() as group:
            group.start_soon(first.run)
            await held.running.wait()
            first.hand_back()
        assert first.stats.handed_back == 1
        async with PostgresStore(pg_url, lease=0.3) as gone:
            lapsed = await engine.start(saga("held", a={}))
            await gone.claim(lapsed)  # and never renewed: it runs out
            held.release.set()
            second = Worker(pg_url, actions=actions, metrics_port=0, poll=0.1)
            async with anyio.create_task_group() as group:
                group.start_soon(second.run)

                async def done() -> bool:
                    states = {(await engine.store.get_run(r)).state for r in (handed, lapsed)}
                    return states == {"succeeded"}

                await wait_for(done, within=30)
                second.stop()
    assert second.metrics is not None
    registry = second.metrics.registry
    assert registry.get_sample_value("sagactl_claims_total") == 2
    assert registry.get_sample_value("sagactl_takeovers_total") == 1
