"""The `Worker` in this process: what it claims, and what it leaves alone."""

from __future__ import annotations

import anyio
import pytest
from sagactl.engine.api import Engine
from sagactl.engine.errors import InputError
from sagactl.engine.store.postgres import PostgresStore
from sagactl.engine.worker import Worker

from .conftest import wait_for
from .effects import ACTIONS, Effect, chain_saga

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


class TestWorker:
    async def test_drives_queued_runs_and_stops_when_asked(self, pg_url: str) -> None:
        """An in-process worker runs what is queued, then stop() ends it with nothing held."""
        async with PostgresStore(pg_url) as store:
            async with Engine(store, actions=ACTIONS) as engine:
                ids = [await engine.start(chain_saga(("a", 0), ("b", 0))) for _ in range(5)]
            worker = Worker(pg_url, concurrency=2, actions=ACTIONS, poll=0.2)
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)

                async def done() -> bool:
                    return len(await store.list_runs(states=["succeeded"])) == 5

                await wait_for(done, within=30)
                worker.stop()
            assert worker.stats.claimed == 5 and worker.stats.finished == 5
            assert sorted(r.run_id for r in worker.stats.results) == sorted(ids)
            assert [(await store.get_run(i)).owner for i in ids] == [None] * 5

    async def test_a_run_it_cannot_drive_is_not_claimed_again_in_a_loop(self, pg_url: str) -> None:
        """A worker missing the run's action fails it once, then leaves it to other workers."""
        async with PostgresStore(pg_url) as store:
            async with Engine(store, actions=ACTIONS) as engine:
                run_id = await engine.start(chain_saga(("a", 0)))
            worker = Worker(pg_url, actions={"other": Effect()}, poll=0.05)
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)

                async def failed() -> bool:
                    return worker.stats.failed == 1

                await wait_for(failed, within=10)
                await anyio.sleep(0.5)  # ten polls: none may claim it again
                worker.stop()
            assert worker.stats.claimed == 1
            run = await store.get_run(run_id)
            assert (run.state, run.owner) == ("queued", None)
            assert [c.run_id for c in await store.claim_next(5)] == [run_id]  # others may

    def test_a_worker_needs_postgresql(self, tmp_path: object) -> None:
        """Building a worker on SQLite is refused with an InputError naming the need."""
        with pytest.raises(InputError, match="PostgreSQL"):
            Worker(f"sqlite:///{tmp_path}/x.db")
