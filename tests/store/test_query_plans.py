"""Every query behind `list`, `status`, `logs`, a claim, a heartbeat and a prune page uses an
index, on both backends (issue 14: the store stays fast at a million runs).

The statements are not listed by hand: the test records what the real store sends while
the real operations run (SQLite's trace callback; psycopg's cursor), then asks the
database for each one's plan. A new query that scans a whole table fails here, wherever
it was written. On PostgreSQL sequential scans are disabled while explaining, so a plan
that still holds one has no index to use (a tiny table would otherwise be scanned on
purpose).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine import Engine
from sagactl.engine.run_filter import RunFilter, matches
from sagactl.engine.store import Store, open_store
from sagactl.engine.store.sql import DEFINITION_COLUMN

from ..engine.sagas import Journal, Step, make_saga
from .conftest import pg_schema

pytestmark = pytest.mark.anyio

BIG_TABLES = ("runs", "run_log", "action_checkpoints", "action_progress")

# What is explained: reads and writes of the big tables' rows. Not: DDL, transaction
# control, pragmas, NOTIFY, the one-row `INSERT ... VALUES` of new rows (nothing to search).
_EXPLAINED = re.compile(r"^\s*(SELECT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
_BIG_TABLE = re.compile(rf"\b({'|'.join(BIG_TABLES)})\b")


def _explained(sql: str) -> bool:
    return bool(_EXPLAINED.match(sql) and _BIG_TABLE.search(sql))


async def _exercise(store: Store) -> None:
    """The operations the issue names, on a store holding finished and queued runs."""
    async with Engine(store, actions={"step": Step(Journal())}) as engine:
        saga = make_saga({"a": [], "b": ["a"]})
        for n in range(3):
            await engine.run(saga, run_id=f"done-{n}")
        await engine.start(saga, run_id="queued-0")
        await engine.status("done-1")  # status
        await engine.log("done-1", after_seq=2)  # logs, from a point
        await engine.list_runs()  # list
        await engine.start(saga, run_id="paused-0")
        await engine.pause("paused-0")  # issue 13: pause, unpause, fork, filters
        await engine.unpause("paused-0", drive=False)
        await engine.start_fork("done-0", new_run_id="forked-0")
        flt = RunFilter.parse(f"saga={saga.name},state=succeeded|queued,before=1ms")
        assert sum([len(page) async for page in matches(store, flt, now=2e9, page=2)]) == 5
    await store.list_runs(states=["succeeded"], limit=50)
    await store.list_runs(saga=saga.name, limit=50)
    first = await store.page_runs(limit=2)
    await store.page_runs(states=["succeeded"], limit=2)
    await store.page_runs(saga=saga.name, limit=2, before=first[-1].cursor)
    await store.page_runs(parent="done-0", limit=2)  # a run's children (list --parent)
    await store.list_runs(parent="done-0", limit=50)
    await store.orphans(["queued", "running", "compensating"])  # what resume --all claims
    claim = await store.claim("queued-0")  # a claim
    await store.heartbeat()
    await store.release(claim)
    await store.prune(default_retention=3600.0, page=10)  # by retention (none expired)
    await store.tombstone("done-0")  # is the id of a pruned run?
    await store.stuck_runs()  # alerts
    await store.list_runs(states=["stuck"], unchanged_since=1.0)  # list --older-than
    await store.prune(finished_before=Store.now() + 1, page=2)  # prune pages, tombstones
    await store.turn("queued-0")  # parked runs: a concurrency key's turn, signals, timers
    await store.pending_signals("done-1")
    await store.due()
    claim_next = getattr(store, "claim_next", None)  # a worker's claim (PostgreSQL)
    if claim_next is not None:
        for taken in await claim_next(1):
            await store.release(taken)


BIG_STORE_STATS = {
    "runs_by_state_newest": "1000000 250000 1 1",
    "runs_by_saga_newest": "1000000 100000 1 1",
    "runs_newest": "1000000 1 1",
    "runs_by_finished": "1000000 1",
}
"""What `ANALYZE` writes of a million runs in four states and ten sagas: with it, SQLite's
planner weighs an index by how few rows it selects, and may prefer another order."""


def _as_if_big(path: Path) -> None:
    """Gives the database the statistics of a big store (read when a connection opens)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("ANALYZE")
        rows = {"runs": 1_000_000, "run_log": 12_000_000}
        for table, index, stat in conn.execute(
            "SELECT tbl, idx, stat FROM sqlite_stat1"
        ).fetchall():
            if table not in rows:
                continue
            # The table's own row and every other index: as many rows, each value rare.
            scaled = BIG_STORE_STATS.get(index) or " ".join(
                [str(rows[table])] + ["1"] * (len(stat.split()) - 1)
            )
            conn.execute(
                "UPDATE sqlite_stat1 SET stat = ? WHERE tbl = ? AND idx IS ?",
                (scaled, table, index),
            )
    finally:
        conn.close()


def _sqlite_plans(path: Path, statements: list[str]) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        return {
            sql: [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")] for sql in statements
        }
    finally:
        conn.close()


def _sqlite_full_scans(sql: str, plan: list[str]) -> list[str]:
    """A walk of a whole table: `SCAN table`, or `SCAN table USING [COVERING] INDEX` (every
    row in the index's order) unless nothing filters the rows and a LIMIT ends the walk
    (the first page of all runs; the pinned definition's look-up is no filter); `SEARCH`
    finds rows through an index."""
    first_rows = " LIMIT " in sql and " WHERE " not in sql.replace(DEFINITION_COLUMN, "")
    return [
        line
        for line in plan
        for table in BIG_TABLES
        if re.match(rf"SCAN {table}\b", line) and not (first_rows and " INDEX " in line)
    ]


async def test_sqlite_queries_use_indexes(tmp_path: Path, sqlite_traced: list[str]) -> None:
    path = tmp_path / "plans.db"
    async with open_store(f"sqlite://{path}") as store:
        sqlite_traced.clear()  # the migrations are not what a user waits on
        await _exercise(store)
    statements = sorted({s for s in sqlite_traced if _explained(s)})
    assert any("FROM run_log" in s for s in statements), "the log was never read"
    assert any(s.lstrip().upper().startswith("DELETE") for s in statements), "no prune page"
    for statistics in ("none", "a big store's"):
        if statistics != "none":
            _as_if_big(path)
        plans = _sqlite_plans(path, statements)
        scans = {sql: _sqlite_full_scans(sql, plan) for sql, plan in plans.items()}
        assert {sql: lines for sql, lines in scans.items() if lines} == {}, statistics


async def test_sqlite_keeps_no_index_another_begins_with(tmp_path: Path) -> None:
    """An index whose columns lead another's serves no query the other cannot, and each
    write of its table rewrites its pages too (partial and unique indexes are not such)."""
    path = tmp_path / "indexes.db"
    async with open_store(f"sqlite://{path}"):
        pass
    conn = sqlite3.connect(path)
    try:
        plain: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'"):
            for _, name, unique, _, partial in conn.execute(f"PRAGMA index_list('{table}')"):
                if not unique and not partial:
                    columns = tuple(r[2] for r in conn.execute(f"PRAGMA index_info('{name}')"))
                    plain.setdefault(table, []).append((name, columns))
    finally:
        conn.close()
    led = [
        (name, other)
        for indexes in plain.values()
        for name, columns in indexes
        for other, longer in indexes
        if other != name and longer[: len(columns)] == columns
    ]
    assert led == []


def _pg_full_scans(plan: list[str]) -> list[str]:
    return [
        line
        for line in plan
        if any(re.search(rf"Seq Scan on {table}\b", line) for table in BIG_TABLES)
    ]


@pytest.mark.postgres
async def test_postgresql_queries_use_indexes(monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    seen: list[tuple[str, Any]] = []
    execute = psycopg.AsyncCursor.execute

    async def traced(
        self: psycopg.AsyncCursor[Any], query: Any, params: Any = None, **kw: Any
    ) -> Any:
        seen.append((str(query), params))
        return await execute(self, query, params, **kw)

    with pg_schema("plans") as url:
        async with open_store(url) as store:
            monkeypatch.setattr(psycopg.AsyncCursor, "execute", traced)
            await _exercise(store)
            monkeypatch.undo()
        statements = {(sql, _freeze(params)) for sql, params in seen if _explained(sql)}
        assert any("FROM run_log" in sql for sql, _ in statements), "the log was never read"
        assert any("FOR UPDATE SKIP LOCKED" in sql for sql, _ in statements), "no claim"
        scans: dict[str, list[str]] = {}
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET enable_seqscan = off")
            for sql, params in sorted(statements, key=lambda s: s[0]):
                plan = [row[0] for row in conn.execute(f"EXPLAIN {sql}", _thaw(params))]
                if lines := _pg_full_scans(plan):
                    scans[sql] = lines
        assert scans == {}


def _freeze(params: Any) -> Any:
    """Parameters as a hashable value (lists become tuples), so statements de-duplicate."""
    if isinstance(params, dict):
        return ("dict", tuple(sorted((k, _freeze(v)) for k, v in params.items())))
    if isinstance(params, list | tuple):
        return ("seq", tuple(_freeze(v) for v in params))
    return params


def _thaw(params: Any) -> Any:
    if isinstance(params, tuple) and len(params) == 2 and params[0] == "dict":
        return {k: _thaw(v) for k, v in params[1]}
    if isinstance(params, tuple) and len(params) == 2 and params[0] == "seq":
        return [_thaw(v) for v in params[1]]
    return params
