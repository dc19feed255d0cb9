"""SQLite commits on the event loop (`commit_on_loop`): the CLI's engines make them, an
engine embedded in an application does not unless asked; and a run whose actions hold
the write lock in their own transactions still lands every record, in order."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from contextlib import closing
from typing import Any

import anyio
import pytest
from sagactl.engine import Action, ActionContext
from sagactl.engine.api import Engine
from sagactl.engine.store import Migration, register_migrations
from sagactl.engine.store.sqlite import SqliteStore
from sagactl.engine.sync import with_engine

from .sagas import make_saga

pytestmark = pytest.mark.anyio

LEDGER = "CREATE TABLE loop_ledger (key TEXT NOT NULL);"

register_migrations(
    "commitonlooptest",
    [Migration(1, {"sqlite": LEDGER, "postgresql": LEDGER})],
)


class HoldsTheLock(Action):
    """`hold*` actions write a ledger row in their transaction and keep the write lock a
    while; the others finish meanwhile, so their commits find the lock taken."""

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if not inputs["name"].startswith("hold"):
            await anyio.sleep(0.002)
            return {}
        async with ctx.transaction() as tx:
            await tx.execute("INSERT INTO loop_ledger VALUES (?)", (ctx.idempotency_key,))
            await anyio.sleep(0.03)
        return {}


def _log(db: str, run_id: str) -> list[tuple[int, str, str | None]]:
    with closing(sqlite3.connect(db.removeprefix("sqlite://"))) as conn:
        rows = conn.execute(
            "SELECT seq, kind, action FROM run_log WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    return [(int(seq), str(kind), action) for seq, kind, action in rows]


class TestCommitOnLoop:
    def test_the_cli_engine_commits_on_its_loop(self, db: str) -> None:
        assert with_engine(db, _commits_on_loop) is True
        assert with_engine(db, _commits_on_loop, commit_on_loop=False) is False

    async def test_an_embedded_engine_does_not_unless_asked(self, db: str) -> None:
        async with Engine(db) as engine:
            assert await _commits_on_loop(engine) is False
        async with Engine(db, commit_on_loop=True) as engine:
            assert await _commits_on_loop(engine) is True

    async def test_actions_holding_the_lock_leave_a_whole_log(self, db: str) -> None:
        """Siblings hold the lock in turn inside their transactions while the others
        finish: those commits go through the thread, and every record lands in order."""
        first = {f"hold{i}": [] for i in range(3)} | {f"a{i}": [] for i in range(7)}
        saga = make_saga(first | {"last": list(first)})
        async with Engine(db, actions={"step": HoldsTheLock()}, commit_on_loop=True) as engine:
            result = await engine.run(saga, run_id="held")
            again = await engine.run(saga, run_id="after")
        assert result.ok and again.ok
        for run_id in ("held", "after"):
            log = _log(db, run_id)
            seqs = [seq for seq, _, _ in log]
            assert seqs == sorted(seqs) == list(range(seqs[0], seqs[0] + len(seqs)))
            finished = [action for _, kind, action in log if kind == "action_succeeded"]
            assert sorted(finished) == sorted([*first, "last"])
            assert finished[-1] == "last"
        with closing(sqlite3.connect(db.removeprefix("sqlite://"))) as conn:
            keys = {row[0] for row in conn.execute("SELECT key FROM loop_ledger")}
        assert keys == {f"{run_id}/hold{i}" for run_id in ("held", "after") for i in range(3)}


async def _commits_on_loop(engine: Engine) -> bool:
    """Whether the engine's store runs its writes on this thread (the loop's), asked of the
    write path itself, not of a setting."""
    store = engine.store
    assert isinstance(store, SqliteStore)
    thread = await store._write(lambda conn: threading.current_thread())
    assert store.commit_on_loop is (thread is threading.current_thread())
    return thread is threading.current_thread()
