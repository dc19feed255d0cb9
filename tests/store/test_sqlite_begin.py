"""SQLite: many actions opening `ctx.transaction()` at once all get through.

Each waits for the one writer without holding a worker thread; before, 50 waiters took
every thread of anyio's pool (40) and the writer holding the lock could not commit.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from sagactl.engine.events import Event, EventKind
from sagactl.engine.store import Claim, NewRun
from sagactl.engine.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_more_transactions_than_threads(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite://{tmp_path / 'log.db'}", busy_timeout=5.0)
    async with store:
        claims = []
        for i in range(60):
            created = await store.create_run(
                NewRun(f"r{i}", "demo", "h", {"format": 1, "name": "demo", "actions": {}}, {})
            )
            assert created.claim is not None
            claims.append(created.claim)
        committed: list[str] = []

        async def one(claim: Claim) -> None:
            tx = await store.begin(claim)
            await tx.execute("CREATE TABLE IF NOT EXISTS t (run TEXT)")
            await tx.execute("INSERT INTO t VALUES (?)", (claim.run_id,))
            await anyio.lowlevel.checkpoint()  # let the others pile up
            await tx.commit([Event("", EventKind.ACTION_STARTED, "a", {"attempt": 1})])
            committed.append(claim.run_id)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for claim in claims:
                    group.start_soon(one, claim)
        assert sorted(committed) == sorted(c.run_id for c in claims)
