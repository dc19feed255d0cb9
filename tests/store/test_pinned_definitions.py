"""Where the SQLite store keeps a run's pinned definition: once per text in
`run_definitions` (migration 12), or, for runs made before it, in the run's own row."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sagactl.engine.store import NewRun, open_store

pytestmark = pytest.mark.anyio

DEFINITION = {"format": 1, "name": "demo", "pad": "x" * 4000, "actions": {}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def new_run(run_id: str) -> NewRun:
    return NewRun(run_id, "demo", "h", DEFINITION, {"app": "x"})


async def test_new_runs_share_one_stored_copy(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    async with open_store(f"sqlite://{path}") as store:
        for run_id in ("r1", "r2"):
            await store.create_run(new_run(run_id), claim=False)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM run_definitions").fetchone() == (1,)
        rows = conn.execute("SELECT length(definition) FROM runs").fetchall()
    conn.close()
    assert rows == [(0,), (0,)]


async def test_a_run_made_before_keeps_its_definition_in_its_row(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    async with open_store(f"sqlite://{path}") as store:
        await store.create_run(new_run("r1"), claim=False)
    old = {**DEFINITION, "name": "older"}
    with sqlite3.connect(path) as conn:  # as migration 12 finds a run it did not make
        conn.execute("UPDATE runs SET definition = ?, definition_digest = NULL", (json.dumps(old),))
    conn.close()
    async with open_store(f"sqlite://{path}") as store:
        assert (await store.get_run("r1")).definition == old
        await store.create_run(new_run("r2"), claim=False)
        assert (await store.get_run("r2")).definition == DEFINITION
