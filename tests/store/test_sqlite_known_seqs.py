"""SQLite: an append moves the run row on from the `last_seq` its store remembers, without
reading it first; a remembered value that is wrong costs the read, never a record."""

from __future__ import annotations

from pathlib import Path

import pytest
from sagactl.engine.events import Event, EventKind
from sagactl.engine.store import Claim, ClaimLost, NewRun
from sagactl.engine.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def started(attempt: int) -> Event:
    return Event("", EventKind.ACTION_STARTED, "a", {"attempt": attempt})


async def created(store: SqliteStore, run_id: str = "r1") -> Claim:
    run = NewRun(run_id, "demo", "h", {"format": 1, "name": "demo", "actions": {}}, {})
    made = await store.create_run(run, records=[started(1)])
    assert made.claim is not None
    return made.claim


async def test_a_wrong_remembered_seq_is_read_again(tmp_path: Path) -> None:
    """Remembered too low or too high (a commit rolled back, another writer): the append
    reads `last_seq` and numbers its records right; the next one needs no read."""
    async with SqliteStore(f"sqlite://{tmp_path / 'log.db'}") as store:
        claim = await created(store)
        assert store._known.get("r1") == 2
        for wrong in (1, 7):
            store._known.note("r1", wrong)
            seq = (await store.append(claim, [started(2)]))[0].seq
            assert store._known.get("r1") == seq
        assert [r.seq for r in await store.read_log("r1")] == [1, 2, 3, 4]
        tx = await store.begin(claim)
        store._known.note("r1", 0)
        assert [r.seq for r in await tx.commit([started(3)])] == [5]


async def test_a_right_remembered_seq_costs_no_read(tmp_path: Path) -> None:
    """The point of remembering: an append whose store knows `last_seq` runs no read of
    it; one that does not know it (forgotten) runs exactly one."""
    async with SqliteStore(f"sqlite://{tmp_path / 'log.db'}") as store:
        claim = await created(store)
        seen: list[str] = []
        await store._write(lambda conn: conn.set_trace_callback(seen.append))
        await store.append(claim, [started(2)])
        reads = [s for s in seen if s.startswith("SELECT last_seq")]
        assert seen and reads == []
        store._known.forget("r1")
        await store.append(claim, [started(3)])
        assert len([s for s in seen if s.startswith("SELECT last_seq")]) == 1
        assert [r.seq for r in await store.read_log("r1")] == [1, 2, 3, 4]


async def test_a_stale_claim_fails_whatever_is_remembered(tmp_path: Path) -> None:
    """The claim is checked with the remembered `last_seq` and with the one read."""
    async with SqliteStore(f"sqlite://{tmp_path / 'log.db'}") as store:
        old = await created(store)
        await store.release(old)
        new = await store.claim("r1")
        await store.append(new, [started(2)])
        for remembered in (None, 2, 3):
            store._known.forget("r1")
            if remembered is not None:
                store._known.note("r1", remembered)
            with pytest.raises(ClaimLost):
                await store.append(old, [started(3)])
        assert [r.seq for r in await store.read_log("r1")] == [1, 2, 3]


async def test_a_finished_run_is_forgotten(tmp_path: Path) -> None:
    """A run whose claim is released is not remembered (the store serves millions)."""
    async with SqliteStore(f"sqlite://{tmp_path / 'log.db'}") as store:
        claim = await created(store)
        done = Event("", EventKind.RUN_FINISHED, None, {"state": "succeeded", "outputs": {}})
        await store.append(claim, [done])
        assert store._known.get("r1") is None
