"""The shared store suite: what every backend guarantees to the scheduler."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import anyio
import pytest
from sagactl.engine.clock import SystemClock
from sagactl.engine.errors import RunNotFound
from sagactl.engine.events import Event, EventKind
from sagactl.engine.scheduler.journal import Journal
from sagactl.engine.states import RunStatus
from sagactl.engine.store import (
    Claim,
    ClaimLost,
    NewRun,
    RunBusy,
    RunExists,
    Store,
)

from .conftest import StoreOpener

pytestmark = pytest.mark.anyio


def new_run(run_id: str = "r1", *, digest: str = "h1", saga: str = "demo") -> NewRun:
    return NewRun(
        run_id=run_id,
        saga=saga,
        definition_hash=digest,
        definition={"format": 1, "name": saga, "actions": {}},
        inputs={"app": "x"},
        plugin_versions={"demo.a": "1.0"},
    )


def rec(kind: str, action: str | None = None, **data: object) -> Event:
    return Event("", kind, action, data)


async def started(store: Store, run_id: str = "r1") -> Claim:
    created = await store.create_run(new_run(run_id))
    assert created.claim is not None
    await store.append(created.claim, [rec(EventKind.RUN_STARTED, state="running")])
    return created.claim


class TestMigrations:
    async def test_core_and_registered_namespaces_are_applied(self, store: Store) -> None:
        """Opening an empty database applies the engine's and registered migrations."""
        applied = await store.migrations_applied()
        assert applied["engine"] >= 1
        assert applied["storetest"] == 1

    async def test_upgrade_again_applies_nothing(self, store: Store) -> None:
        """Migrations are recorded, so a second upgrade is a no-op."""
        assert await store.upgrade() == []

    async def test_reopening_keeps_the_data(self, opener: StoreOpener) -> None:
        """A run written by one store is read by the next one opened on the database."""
        async with opener() as first:
            await started(first)
        async with opener() as second:
            run = await second.get_run("r1")
            assert run.state == "running"
            assert [r.kind for r in await second.read_log("r1")] == ["run_created", "run_started"]


class TestPinnedDefinitions:
    async def test_each_run_reads_its_own_definition(self, store: Store) -> None:
        """Definitions are stored once per text: runs of one text share it, and runs whose
        definitions differ under one hash (another source file) keep their own."""
        other = dataclasses.replace(
            new_run("r3"), definition={"format": 1, "name": "demo", "source": "b.yaml"}
        )
        for run in (new_run("r1"), new_run("r2"), other):
            await store.create_run(run, claim=False)
        assert (await store.get_run("r1")).definition == new_run().definition
        assert (await store.get_run("r2")).definition == new_run().definition
        assert (await store.get_run("r3")).definition == other.definition
        listed = await store.list_runs()
        assert [run.definition for run in listed] == [new_run().definition] * 2 + [other.definition]


class TestCreateRun:
    async def test_creates_a_queued_run_with_its_pin(self, store: Store) -> None:
        """A new run is queued, pins definition and plugin versions, and logs run_created."""
        created = await store.create_run(new_run())
        assert created.created and created.claim is not None
        run = await store.get_run("r1")
        assert (run.state, run.saga, run.definition_hash) == ("queued", "demo", "h1")
        assert run.definition == {"format": 1, "name": "demo", "actions": {}}
        assert run.plugin_versions == {"demo.a": "1.0"}
        assert run.inputs == {"app": "x"}
        log = await store.read_log("r1")
        assert [(r.seq, r.kind, r.data["state"]) for r in log] == [(1, "run_created", "queued")]

    async def test_same_run_id_returns_the_existing_run(self, store: Store) -> None:
        """Creation is idempotent on run_id: the second call creates nothing and claims nothing."""
        await store.create_run(new_run())
        again = await store.create_run(new_run())
        assert not again.created and again.claim is None
        assert len(await store.read_log("r1")) == 1

    async def test_same_run_id_with_another_definition_is_refused(self, store: Store) -> None:
        """A run id reused for a different definition raises RunExists."""
        await store.create_run(new_run())
        with pytest.raises(RunExists):
            await store.create_run(new_run(digest="other"))

    async def test_same_run_id_with_other_inputs_is_refused(self, store: Store) -> None:
        """A run id reused with other inputs raises RunExists naming them (issue 10)."""
        await store.create_run(new_run())
        other = dataclasses.replace(new_run(), inputs={"app": "y", "extra": 1})
        with pytest.raises(RunExists, match='app was "x", now "y"; extra was not given, now 1'):
            await store.create_run(other)
        assert len(await store.read_log("r1")) == 1

    async def test_unclaimed_creation_leaves_an_orphan(self, store: Store) -> None:
        """A run created without a claim (detached) is there for any worker to take."""
        created = await store.create_run(new_run(), claim=False)
        assert created.claim is None
        assert await store.orphans(["queued"]) == ["r1"]

    async def test_unknown_run_raises_run_not_found(self, store: Store) -> None:
        """get_run of an id that does not exist raises RunNotFound."""
        with pytest.raises(RunNotFound):
            await store.get_run("nope")


class TestClaims:
    async def test_claim_of_unknown_run_raises(self, store: Store) -> None:
        """Claiming a run that does not exist raises RunNotFound."""
        with pytest.raises(RunNotFound):
            await store.claim("nope")

    async def test_a_held_run_cannot_be_claimed_again_here(self, store: Store) -> None:
        """A run this store holds is busy, even for this store."""
        await started(store)
        with pytest.raises(RunBusy):
            await store.claim("r1")

    async def test_a_live_owner_keeps_its_run(self, store: Store, opener: StoreOpener) -> None:
        """Another store cannot take a run whose owner is alive."""
        await started(store)
        async with opener() as other:
            with pytest.raises(RunBusy):
                await other.claim("r1")
            assert await other.orphans(["running"]) == []

    async def test_a_dead_owner_is_taken_over_at_once(self, opener: StoreOpener) -> None:
        """When the owner is gone, another store claims the run with a higher fence."""
        async with opener() as first:
            claim = await started(first)
        async with opener() as second:
            assert await second.orphans(["running"]) == ["r1"]
            taken = await second.claim("r1")
            assert taken.fence > claim.fence
            assert (await second.get_run("r1")).owner == taken.owner

    async def test_a_stale_claim_can_write_nothing(self, store: Store) -> None:
        """After release and a new claim, writes under the old claim raise ClaimLost."""
        old = await started(store)
        await store.release(old)
        new = await store.claim("r1")
        assert not new.taken_over  # handed back, not taken over
        with pytest.raises(ClaimLost):
            await store.append(old, [rec(EventKind.ACTION_STARTED, "a", attempt=1)])
        with pytest.raises(ClaimLost):
            await store.save_checkpoint(old, "a", {"n": 1})
        await store.append(new, [rec(EventKind.ACTION_STARTED, "a", attempt=1)])
        assert [r.kind for r in await store.read_log("r1")][-1] == EventKind.ACTION_STARTED
        assert len(await store.read_log("r1")) == 3

    async def test_release_makes_the_run_an_orphan(self, store: Store) -> None:
        """A released unfinished run is listed by orphans."""
        claim = await started(store)
        await store.release(claim)
        assert await store.orphans(["running"]) == ["r1"]


class TestAppend:
    async def test_records_are_numbered_in_order(self, store: Store) -> None:
        """append returns the records with consecutive seqs, and read_log gives them back."""
        claim = await started(store)
        numbered = await store.append(
            claim,
            [
                rec(EventKind.ACTION_STARTED, "a", attempt=1),
                rec(EventKind.ACTION_SUCCEEDED, "a", outputs={"x": 1}),
            ],
        )
        assert [r.seq for r in numbered] == [3, 4]
        log = await store.read_log("r1", after_seq=2)
        assert [(r.seq, r.kind, r.action) for r in log] == [
            (3, EventKind.ACTION_STARTED, "a"),
            (4, EventKind.ACTION_SUCCEEDED, "a"),
        ]
        assert log[1].data == {"outputs": {"x": 1}}
        assert log[0].at > 0

    async def test_records_not_asked_for_are_written_all_the_same(self, store: Store) -> None:
        """`numbered=False`: nothing returned, the records written and numbered as ever."""
        claim = await started(store)
        unnumbered = await store.append(
            claim, [rec(EventKind.ACTION_STARTED, "a", attempt=1)], numbered=False
        )
        assert unnumbered == []
        numbered = await store.append(claim, [rec(EventKind.ACTION_SUCCEEDED, "a")])
        assert [r.seq for r in numbered] == [4]
        log = await store.read_log("r1", after_seq=2)
        assert [(r.seq, r.kind) for r in log] == [
            (3, EventKind.ACTION_STARTED),
            (4, EventKind.ACTION_SUCCEEDED),
        ]
        await store.append(claim, [rec(EventKind.RUN_STUCK, state="stuck")], numbered=False)
        assert (await store.get_run("r1")).owner is None  # released, as with numbered

    async def test_run_row_follows_run_level_records(self, store: Store) -> None:
        """state, error, started and finished follow the records appended."""
        claim = await started(store)
        run = await store.get_run("r1")
        assert run.started is not None and run.finished is None
        await store.append(
            claim,
            [rec(EventKind.RUN_COMPENSATING, state="compensating", error="boom", code="fatal")],
        )
        run = await store.get_run("r1")
        assert (run.state, run.error, run.error_code) == ("compensating", "boom", "fatal")
        await store.append(claim, [rec(EventKind.RUN_FINISHED, state="compensated", error="boom")])
        run = await store.get_run("r1")
        assert run.state == "compensated" and run.finished is not None

    async def test_a_finishing_record_releases_the_claim(self, store: Store) -> None:
        """Finishing (or sticking) a run frees it in the same commit: no owner, no more writes."""
        claim = await started(store)
        await store.append(claim, [rec(EventKind.RUN_STUCK, state="stuck", error="x")])
        assert (await store.get_run("r1")).owner is None
        assert await store.orphans(["stuck"]) == ["r1"]
        with pytest.raises(ClaimLost):
            await store.append(claim, [rec(EventKind.RUN_RESUMED, state="running")])

    async def test_progress_is_saved_with_the_records(self, store: Store) -> None:
        """The last progress per action rides along with an append."""
        claim = await started(store)
        await store.append(claim, [], progress={"a": {"fraction": 0.5}})
        await store.append(claim, [], progress={"a": {"fraction": 0.9}, "b": {"fraction": 0.1}})
        assert await store.progress("r1") == {"a": {"fraction": 0.9}, "b": {"fraction": 0.1}}

    async def test_concurrent_appends_all_land_in_call_order(self, store: Store) -> None:
        """Many tasks appending at once: every record is stored, numbered without gaps."""
        claims = [await started(store, f"r{i}") for i in range(20)]

        async def write(claim: Claim) -> None:
            for n in range(5):
                await store.append(claim, [rec(EventKind.ACTION_STARTED, f"a{n}", attempt=1)])

        async with anyio.create_task_group() as tg:
            for claim in claims:
                tg.start_soon(write, claim)
        for claim in claims:
            log = await store.read_log(claim.run_id)
            assert [r.seq for r in log] == list(range(1, 8))
            assert [r.action for r in log[2:]] == [f"a{n}" for n in range(5)]

    async def test_unserialisable_data_fails_only_its_own_append(self, store: Store) -> None:
        """A record that is not JSON is refused without harming others in the same batch."""
        claim = await started(store)
        other = await started(store, "r2")

        async def bad() -> None:
            with pytest.raises(TypeError):
                await store.append(claim, [rec(EventKind.ACTION_SUCCEEDED, "a", outputs={1j})])

        async with anyio.create_task_group() as tg:
            tg.start_soon(bad)
            tg.start_soon(store.append, other, [rec(EventKind.ACTION_STARTED, "a", attempt=1)])
        assert len(await store.read_log("r1")) == 2
        assert len(await store.read_log("r2")) == 3


class TestTransactions:
    async def test_commit_stores_writes_with_the_records(self, store: Store) -> None:
        """The action's writes and the completion record commit together."""
        claim = await started(store)
        tx = await store.begin(claim)
        assert tx.dialect == store.dialect
        assert await tx.execute("INSERT INTO widgets VALUES (?, ?)", ("w1", 3)) == 1
        assert await tx.fetchone("SELECT size FROM widgets WHERE name = ?", ("w1",)) == (3,)
        numbered = await tx.commit([rec(EventKind.ACTION_SUCCEEDED, "a", outputs={})])
        assert numbered[0].seq == 3
        check = await store.begin(claim)
        assert await check.fetchall("SELECT name, size FROM widgets") == [("w1", 3)]
        await check.rollback()
        assert (await store.read_log("r1"))[-1].kind == EventKind.ACTION_SUCCEEDED

    async def test_rollback_leaves_nothing(self, store: Store) -> None:
        """Rolled back writes are gone and no record was added."""
        claim = await started(store)
        tx = await store.begin(claim)
        await tx.execute("INSERT INTO widgets VALUES (?, ?)", ("w1", 3))
        await tx.rollback()
        await tx.rollback()  # twice is harmless
        check = await store.begin(claim)
        assert await check.fetchall("SELECT * FROM widgets") == []
        await check.rollback()
        assert len(await store.read_log("r1")) == 2

    async def test_commit_under_a_lost_claim_rolls_everything_back(self, store: Store) -> None:
        """A transaction whose claim is stale cannot commit its writes."""
        claim = await started(store)
        await store.release(claim)
        tx = await store.begin(claim)
        await tx.execute("INSERT INTO widgets VALUES (?, ?)", ("w1", 3))
        with pytest.raises(ClaimLost):
            await tx.commit([rec(EventKind.ACTION_SUCCEEDED, "a", outputs={})])
        fresh = await store.claim("r1")
        check = await store.begin(fresh)
        assert await check.fetchall("SELECT * FROM widgets") == []
        await check.rollback()


class TestCheckpoints:
    async def test_last_checkpoint_wins(self, store: Store, opener: StoreOpener) -> None:
        """save_checkpoint replaces the action's previous one, durably."""
        claim = await started(store)
        await store.save_checkpoint(claim, "a", {"offset": 10})
        await store.save_checkpoint(claim, "a", {"offset": 20})
        await store.save_checkpoint(claim, "b", [1, 2])
        async with opener() as other:
            assert await other.checkpoints("r1") == {"a": {"offset": 20}, "b": [1, 2]}


class TestLoad:
    async def test_load_reads_what_driving_a_run_needs(self, store: Store) -> None:
        """`load`: the run, its log, checkpoints and pause flag, as the single reads give."""
        claim = await started(store)
        await store.save_checkpoint(claim, "a", {"offset": 10})
        await store.request_pause("r1")
        loaded = await store.load("r1")
        assert loaded.record == await store.get_run("r1")
        assert loaded.log == await store.read_log("r1") and len(loaded.log) == 2
        assert loaded.checkpoints == {"a": {"offset": 10}}
        assert loaded.pause_requested
        await store.request_pause("r1", False)
        assert not (await store.load("r1")).pause_requested

    async def test_load_of_no_run_raises(self, store: Store) -> None:
        with pytest.raises(RunNotFound):
            await store.load("nope")


class TestCancelRequests:
    async def test_request_cancel_sets_the_flag(self, store: Store, opener: StoreOpener) -> None:
        """A cancel requested from another store is seen by the owner."""
        await started(store)
        assert not await store.cancel_requested("r1")
        async with opener() as other:
            await other.request_cancel("r1")
        assert await store.cancel_requested("r1")
        assert (await store.get_run("r1")).cancel_requested

    async def test_cancel_of_unknown_run_raises(self, store: Store) -> None:
        """request_cancel of an id that does not exist raises RunNotFound."""
        with pytest.raises(RunNotFound):
            await store.request_cancel("nope")


class TestListAndPrune:
    async def test_list_is_oldest_first_and_filters(self, store: Store) -> None:
        """list_runs orders by creation, filters by state and saga, honours the limit."""
        for i in range(4):
            await started(store, f"r{i}")
        await store.create_run(new_run("q", saga="other"), claim=False)
        assert [r.run_id for r in await store.list_runs()] == ["r0", "r1", "r2", "r3", "q"]
        assert [r.run_id for r in await store.list_runs(states=["queued"])] == ["q"]
        assert [r.run_id for r in await store.list_runs(saga="other")] == ["q"]
        assert [r.run_id for r in await store.list_runs(limit=2)] == ["r0", "r1"]

    async def test_prune_deletes_only_old_finished_runs(self, store: Store) -> None:
        """prune removes finished runs older than the cutoff, with their logs, in pages."""
        for i in range(5):
            claim = await started(store, f"done{i}")
            await store.save_checkpoint(claim, "a", 1)
            await store.append(claim, [rec(EventKind.RUN_FINISHED, state="succeeded")])
        await started(store, "live")
        cutoff = time.time() + 1
        assert await store.prune(finished_before=cutoff, page=2) == 5
        assert [r.run_id for r in await store.list_runs()] == ["live"]
        assert await store.read_log("done0") == []
        assert await store.checkpoints("done0") == {}
        assert await store.prune(finished_before=cutoff) == 0

    async def test_prune_keeps_recent_runs(self, store: Store) -> None:
        """A run finished after the cutoff is kept."""
        claim = await started(store)
        await store.append(claim, [rec(EventKind.RUN_FINISHED, state="succeeded")])
        assert await store.prune(finished_before=time.time() - 3600) == 0
        assert len(await store.list_runs()) == 1


class TestJournalCommit:
    async def test_a_commit_returns_once_durable_though_its_run_is_cancelled(
        self, store: Store
    ) -> None:
        """The run's scope is cancelled while the journal commits a record it applied: the
        commit still returns once the record is in the log, shielded by the store itself
        where its appends are (`Store.appends_shielded`), else by the journal; the
        cancellation comes at the next checkpoint."""
        claim = await started(store)
        journal = Journal(RunStatus("r1"), SystemClock(), store=store, claim=claim, handlers=())
        committed = False
        with anyio.CancelScope() as scope:
            # Cancelled in the next tick, while the commit waits for its batch (a queued
            # callback also keeps SQLite's writer from committing it at once on the loop).
            asyncio.get_running_loop().call_soon(scope.cancel)
            await journal.commit([rec(EventKind.ACTION_STARTED, "a", attempt=1)])
            committed = True
            await anyio.sleep(5)
        assert scope.cancelled_caught and committed
        log = await store.read_log("r1")
        assert [(r.kind, r.action) for r in log][-1] == (EventKind.ACTION_STARTED, "a")
