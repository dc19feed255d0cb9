"""Issue 14's second floor: what the parts sagactl is made of cost for one saga with no
engine around them.

The mission fixes the parts: an anyio scheduler running independent branches as tasks, a
durable SQLite log with an fsync'd commit, and the design fixes when it commits (intent
before each action, outputs after, shared where they land together: 8 commits for the
11-step build DAG, one per level of the DAG and one at the end). `StackFloor` does only
that, inline: per run a task per action beyond the first of a level, a task group per
level of more than one, JSON for each record, a commit on the loop per level of the
records' rows and the run row's fenced update, and nothing else: no status, no
references, no schema checks, no events for anyone, no log context, no indexes beyond
the two tables' keys. What the engine's CPU per action exceeds this by is its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import networkx as nx

from .workloads import Dag

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL,
    last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS run_log (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL,
    action TEXT, data TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
"""
_INSERT_RUN = "INSERT INTO runs VALUES (?, 'running', ?, 0)"
_INSERT_LOG = "INSERT INTO run_log VALUES (?, ?, ?, ?, ?, ?)"
_MOVE_ON = "UPDATE runs SET state = ?, updated = ?, last_seq = ? WHERE run_id = ? AND last_seq = ?"

_Row = tuple[str, str | None, dict[str, Any]]
"""A record before it is numbered: kind, action, data."""


class StackFloor:
    """Runs a DAG's sagas of no-op actions the least way its parts allow, on one
    SQLite file in WAL mode with `synchronous=FULL`, committing on the running loop.

    The least: its commits never suspend, so they need no shield (the engine's may wait
    for the tick's batch, or a writer thread); its levels run in turn, so no task waits
    as a spare; its records have no schema, its run row two columns."""

    def __init__(self, path: Path, dag: Dag) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        graph = nx.DiGraph()
        graph.add_nodes_from(dag.needs)
        graph.add_edges_from((dep, name) for name, deps in dag.needs.items() for dep in deps)
        self._levels = [sorted(level) for level in nx.topological_generations(graph)]
        self._needs = dag.needs
        self._loop = asyncio.new_event_loop()
        self.commits = 0

    def run(self) -> None:
        """One saga to its end."""
        self._loop.run_until_complete(self._run(os.urandom(8).hex()))

    async def _run(self, run_id: str) -> None:
        seq = 0
        outputs: dict[str, dict[str, Any]] = {}
        pending: list[_Row] = [("run_created", None, {"saga": "stack-floor"})]
        for level in self._levels:
            pending += [("action_started", name, {"attempt": 1}) for name in level]
            seq = self._commit(run_id, seq, pending)
            done = await self._run_level(level, outputs)
            outputs.update(done)
            pending = [("action_succeeded", name, {"outputs": out}) for name, out in done.items()]
        pending.append(("run_finished", None, {"state": "succeeded"}))
        self._commit(run_id, seq, pending, state="succeeded")

    async def _run_level(
        self, level: list[str], outputs: dict[str, dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}

        async def one(name: str) -> None:
            done[name] = await _noop({dep: outputs[dep]["done"] for dep in self._needs[name]})

        if len(level) == 1:
            await one(level[0])
            return done
        async with anyio.create_task_group() as group:
            for name in level[1:]:
                group.start_soon(one, name, name=name)
            await one(level[0])
        return {name: done[name] for name in level}

    def _commit(self, run_id: str, seq: int, rows: list[_Row], state: str = "running") -> int:
        """One fsync'd commit of `rows` after `seq`, on the loop (it never suspends, so
        it needs no shield); the run's `last_seq` after."""
        now = time.time()
        numbered = [
            (run_id, seq + i, now, kind, action, json.dumps(data))
            for i, (kind, action, data) in enumerate(rows, 1)
        ]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        if seq == 0:
            conn.execute(_INSERT_RUN, (run_id, now))
        conn.executemany(_INSERT_LOG, numbered)
        moved = conn.execute(_MOVE_ON, (state, now, seq + len(rows), run_id, seq))
        if moved.rowcount != 1:
            conn.execute("ROLLBACK")
            raise RuntimeError(f"run {run_id} moved on under us")
        conn.execute("COMMIT")
        self.commits += 1
        return seq + len(rows)

    def runs(self) -> Iterator[tuple[str, int]]:
        """Each run's state and record count."""
        yield from self._conn.execute(
            "SELECT state, (SELECT count(*) FROM run_log l WHERE l.run_id = r.run_id) FROM runs r"
        )

    def close(self) -> None:
        self._loop.close()
        self._conn.close()


async def _noop(inputs: dict[str, bool]) -> dict[str, Any]:
    return {"done": all(inputs.values())}
