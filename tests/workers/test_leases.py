"""Leases on PostgreSQL, in one process: expiry on the database clock, fencing, affinity."""

from __future__ import annotations

import time

import anyio
import pytest
from sagactl.engine.api import Engine
from sagactl.engine.events import Event, EventKind
from sagactl.engine.store import ClaimLost, NewRun, RunBusy
from sagactl.engine.store.postgres import PostgresStore, translate

from ..store.conftest import pg_schema
from .conftest import wait_for
from .effects import ACTIONS, chain_saga

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def new_run(run_id: str, node: str | None = None) -> NewRun:
    return NewRun(run_id, "demo", "h1", {"format": 1}, {}, {}, node=node)


def started(kind: str = EventKind.RUN_STARTED) -> list[Event]:
    return [Event("", kind, None, {"state": "running"})]


class TestLeases:
    async def test_an_expired_lease_is_taken_over_with_a_higher_fence(self, pg_url: str) -> None:
        """A lease nobody renews runs out on the database clock; the next claim fences the old."""
        async with PostgresStore(pg_url, lease=0.5) as a, PostgresStore(pg_url, lease=5) as b:
            old = (await a.create_run(new_run("r1"), records=started())).claim
            assert old is not None
            with pytest.raises(RunBusy):
                await b.claim("r1")
            lease = (await b.get_run("r1")).lease_expires
            assert lease is not None
            await wait_for(lambda: b.orphans(["running"]), within=5)
            new = await b.claim("r1")
            assert new.fence == old.fence + 1 and new.taken_over and not old.taken_over
            with pytest.raises(ClaimLost):
                await a.append(old, [Event("", EventKind.ACTION_STARTED, "x", {"attempt": 1})])
            with pytest.raises(ClaimLost):
                await a.save_checkpoint(old, "x", 1)
            assert await a.heartbeat() == {"r1"}
            assert (await b.stats())["taken_over"] == 1
            assert (await b.get_run("r1")).owner == b.token

    async def test_heartbeat_keeps_the_lease(self, pg_url: str) -> None:
        """A renewed lease outlives its duration: nobody else can claim the run."""
        async with PostgresStore(pg_url, lease=0.6) as a, PostgresStore(pg_url) as b:
            await a.create_run(new_run("r1"), records=started())
            for _ in range(6):
                await anyio.sleep(0.2)
                assert await a.heartbeat() == set()
            with pytest.raises(RunBusy):
                await b.claim("r1")
            assert await b.claim_next(10) == []

    async def test_an_append_renews_the_lease(self, pg_url: str) -> None:
        """A write under the claim proves the owner alive: it extends the lease, as a
        heartbeat would; the last one, releasing the run, ends it."""
        async with PostgresStore(pg_url, lease=30) as a:
            claim = (await a.create_run(new_run("r1"), records=started())).claim
            assert claim is not None
            before = (await a.get_run("r1")).lease_expires
            await a.append(claim, [Event("", EventKind.ACTION_STARTED, "x", {"attempt": 1})])
            after = (await a.get_run("r1")).lease_expires
            assert before is not None and after is not None and after > before
            finished = Event("", EventKind.RUN_FINISHED, None, {"state": "succeeded"})
            await a.append(claim, [finished])
            assert (await a.get_run("r1")).lease_expires is None

    async def test_a_heartbeat_waits_for_no_row_lock(self, pg_url: str) -> None:
        """A run row locked by a write in flight (here another connection's open
        transaction) is skipped by the renewal, not waited for, and still counts as held;
        a run taken over meanwhile is reported lost."""
        async with PostgresStore(pg_url, lease=30) as a, PostgresStore(pg_url) as b:
            await a.create_run(new_run("r1"), records=started())
            await a.create_run(new_run("r2"), records=started())
            async with await a._connect() as locker:
                await locker.execute("SELECT 1 FROM runs WHERE run_id = 'r1' FOR UPDATE")
                with anyio.fail_after(10):  # waiting for the lock would hang here
                    assert await a.heartbeat() == set()
                await locker.rollback()
            async with await a._connect(autocommit=True) as conn:  # r2's lease runs out
                await conn.execute("UPDATE runs SET lease_expires = now() WHERE run_id = 'r2'")
            assert [c.run_id for c in await b.claim_next(10)] == ["r2"]
            assert await a.heartbeat() == {"r2"}

    async def test_closing_hands_the_leases_back(self, pg_url: str) -> None:
        """A store closed with runs in hand lets another take them at once: a hand-back,
        not a takeover (the counter and the claim say so)."""
        async with PostgresStore(pg_url, lease=60) as a:
            await a.create_run(new_run("r1"), records=started())
        async with PostgresStore(pg_url) as b:
            (claim,) = await b.claim_next(5)
            assert (claim.run_id, claim.fence, claim.taken_over) == ("r1", 2, False)
            assert (await b.stats())["taken_over"] == 0


class TestClaimNext:
    async def test_claims_skip_held_and_pinned_runs(self, pg_url: str) -> None:
        """claim_next takes queued runs once each, and only those pinned to its node."""
        async with (
            PostgresStore(pg_url, node="here") as here,
            PostgresStore(pg_url, node="there") as there,
        ):
            for i in range(3):
                await here.create_run(new_run(f"q{i}"), claim=False)
            await here.create_run(new_run("pinned", node="there"), claim=False)
            first = await here.claim_next(10)
            assert sorted(c.run_id for c in first) == ["q0", "q1", "q2"]
            assert [c.run_id for c in await there.claim_next(10)] == ["pinned"]
            assert await here.claim_next(10) == []

    async def test_concurrent_claimers_never_share_a_run(self, pg_url: str) -> None:
        """Eight stores claiming at once split 40 runs without overlap (SKIP LOCKED)."""
        stores = [PostgresStore(pg_url) for _ in range(8)]
        for s in stores:
            await s.open()
        try:
            for i in range(40):
                await stores[0].create_run(new_run(f"r{i:02}"), claim=False)
            got: list[str] = []

            async def claim(store: PostgresStore) -> None:
                while batch := await store.claim_next(3):
                    got.extend(c.run_id for c in batch)

            async with anyio.create_task_group() as tg:
                for s in stores:
                    tg.start_soon(claim, s)
            assert sorted(got) == [f"r{i:02}" for i in range(40)]
        finally:
            for s in stores:
                await s.close()

    async def test_a_new_run_wakes_a_listener(self, pg_url: str) -> None:
        """Enqueueing NOTIFYs: a waiting worker wakes long before its poll timeout."""
        async with PostgresStore(pg_url) as listener, PostgresStore(pg_url) as producer:
            assert not await listener.wait_for_work(0.05)  # LISTEN is set up, nothing queued
            woke: list[bool] = []

            async def wait() -> None:
                woke.append(await listener.wait_for_work(30))

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.sleep(0.1)
                with anyio.fail_after(5):
                    await producer.create_run(new_run("r1"), claim=False)
            assert woke == [True]

    async def test_a_store_in_another_schema_does_not_wake_it(self, pg_url: str) -> None:
        """NOTIFY reaches the whole database: each schema's store has its own channel."""
        with pg_schema("other") as other_url:
            async with PostgresStore(pg_url) as listener, PostgresStore(other_url) as other:
                assert not await listener.wait_for_work(0.05)  # LISTEN is set up
                await other.create_run(new_run("elsewhere"), claim=False)
                await other.wake("elsewhere")
                assert not await listener.wait_for_work(0.5)
                async with PostgresStore(pg_url) as same:
                    await same.create_run(new_run("here"), claim=False)
                assert await listener.wait_for_work(5)


class TestEngineOnPostgres:
    async def test_engine_runs_a_saga_and_commits_action_writes(self, pg_url: str) -> None:
        """A saga runs to success on PostgreSQL; each effect row commits with its action."""
        async with Engine(pg_url, actions=ACTIONS) as engine:
            result = await engine.run(chain_saga(("a", 0), ("b", 0), ("c", 0)))
            assert result.ok and result.owner is None
            store = engine.store
            finished = await store.get_run(result.run_id)
            assert (finished.owner, finished.lease_expires) == (None, None)
            assert isinstance(store, PostgresStore)
            tx = await store.begin(await store.claim(result.run_id))
            rows = await tx.fetchall("SELECT action FROM effects ORDER BY at")
            await tx.rollback()
            assert rows == [("a",), ("b",), ("c",)]
            assert (await store.stats())["succeeded"] == 1

    async def test_detached_start_is_pinned_to_its_node(self, pg_url: str) -> None:
        """Engine.start(node=...) queues the run with that affinity, shown by status."""
        async with Engine(pg_url, actions=ACTIONS) as engine:
            run_id = await engine.start(chain_saga(("a", 0)), node="builder-1")
            status = await engine.status(run_id)
            assert (status.state, status.node, status.owner) == ("queued", "builder-1", None)
            assert await engine.store.claim(run_id)
            held = await engine.status(run_id)
            assert held.owner is not None and held.lease_expires is not None
            assert held.lease_expires > time.time()  # database clock, same machine here
            assert status.to_json()["node"] == "builder-1"


class TestTranslate:
    def test_placeholders_outside_quotes_become_psycopg_style(self) -> None:
        """? becomes %s, % becomes %%, quoted ? and comments stay as they are."""
        sql = "SELECT '?', \"a?\", x % 2 FROM t WHERE a = ? AND b LIKE '%?' -- ?\n AND c = ?"
        assert translate(sql) == (
            "SELECT '?', \"a?\", x %% 2 FROM t WHERE a = %s AND b LIKE '%?' -- ?\n AND c = %s"
        )


class TestNodePinning:
    async def test_an_action_pins_its_run_and_only_that_node_claims_it(self, pg_url: str) -> None:
        """ctx.pin_to_node() (as receive_tar does) keeps other nodes' workers off the run."""
        from sagactl.engine import Action, ActionContext

        class Pin(Action):
            async def execute(self, ctx: ActionContext, inputs: object) -> dict[str, object]:
                await ctx.pin_to_node()
                return {}

        saga = chain_saga(("a", 0))
        async with PostgresStore(pg_url, node="build-host") as here:
            async with Engine(here, actions={"effect": Pin()}) as engine:
                result = await engine.run(saga)
            run = await here.get_run(result.run_id)
            assert run.node == "build-host"
            claim = await here.claim(run.run_id)
            await here.append(claim, [Event("", EventKind.RUN_RESUMED, None, {"state": "running"})])
            await here.release(claim)  # unfinished and ownerless: runnable again
        async with (
            PostgresStore(pg_url, node="elsewhere") as other,
            PostgresStore(pg_url, node="build-host") as same,
        ):
            assert await other.claim_next(10) == []
            assert [c.run_id for c in await same.claim_next(10)] == [run.run_id]
