"""`sagactl stats` counts through indexes, never by reading a whole big table (the log,
or the runs with their definitions), on both backends; and counts recoveries right."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine.events import EventKind
from sagactl.engine.store import Store, open_store

from .conftest import pg_schema
from .test_store import rec, started

pytestmark = pytest.mark.anyio


async def _resumed_twice(store: Store) -> None:
    """Run r1 resumed twice, r2 once, r3 never."""
    for run_id, times in (("r1", 2), ("r2", 1), ("r3", 0)):
        claim = await started(store, run_id)
        for _ in range(times):
            await store.append(claim, [rec(EventKind.RUN_RESUMED, state="running")])


async def test_sqlite_counts_recoveries_by_index(tmp_path: Path, sqlite_traced: list[str]) -> None:
    path = tmp_path / "stats.db"
    async with open_store(f"sqlite://{path}") as store:
        await _resumed_twice(store)
        sqlite_traced.clear()
        assert (await store.stats())["recovered"] == 3
    (sql,) = [s for s in sqlite_traced if "run_resumed" in s]
    conn = sqlite3.connect(path)
    try:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
    finally:
        conn.close()
    assert not [line for line in plan if re.match(r"SCAN (run_log|runs)\b", line)], plan
    assert any("run_log USING COVERING INDEX run_log_resumed" in line for line in plan), plan
    assert any("runs USING COVERING INDEX runs_started" in line for line in plan), plan


@pytest.mark.postgres
async def test_postgresql_counts_recoveries_by_index(monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    seen: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def traced(
        self: psycopg.AsyncCursor[Any], query: Any, params: Any = None, **kw: Any
    ) -> Any:
        seen.append(str(query))
        return await execute(self, query, params, **kw)

    with pg_schema("stats") as url:
        async with open_store(url) as store:
            await _resumed_twice(store)
            monkeypatch.setattr(psycopg.AsyncCursor, "execute", traced)
            assert (await store.stats())["recovered"] == 3
            monkeypatch.undo()
        (sql,) = [s for s in seen if "run_resumed" in s]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET enable_seqscan = off")
            plan = [row[0] for row in conn.execute(f"EXPLAIN {sql}")]
    assert not [line for line in plan if re.search(r"Seq Scan on (run_log|runs)\b", line)], plan
    assert any("run_log_resumed" in line for line in plan), plan
    assert any("runs_started" in line for line in plan), plan
