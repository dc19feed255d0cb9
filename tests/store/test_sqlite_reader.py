"""The SQLite reader of the read-only commands: the store's own reads, from the file, on
the caller's thread; and the store itself wherever it would do more than read."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from sagactl.engine.errors import RunNotFound
from sagactl.engine.events import EventKind
from sagactl.engine.store import Migration, migrations, open_store, register_migrations
from sagactl.engine.store.reads import RunReads
from sagactl.engine.store.sqlite_reader import SqliteReader, finish_now, open_reader

from .test_open_errors import assert_one_line, make_store, sagactl
from .test_store import new_run, rec


def _reader(path: Path) -> SqliteReader:
    reader = open_reader(f"sqlite://{path}")
    assert reader is not None
    return reader


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A store holding run r1 (started, one action with progress) and an unclaimed r2."""
    path = tmp_path / "runs.db"

    async def fill() -> None:
        async with open_store(f"sqlite://{path}") as store:
            created = await store.create_run(new_run("r1"))
            assert created.claim is not None
            records = [
                rec(EventKind.RUN_STARTED, state="running"),
                rec(EventKind.ACTION_STARTED, "a", attempt=1),
            ]
            await store.append(created.claim, records, progress={"a": {"fraction": 0.5}})
            await store.create_run(new_run("r2", saga="other"), claim=False)

    anyio.run(fill)
    return path


class TestReads:
    def test_the_reader_reads_what_the_store_reads(self, filled: Path) -> None:
        """get_run, list_runs, read_log and progress: the same records as the store's."""

        async def read(reads: RunReads) -> tuple[Any, ...]:
            return (
                await reads.get_run("r1"),
                await reads.list_runs(),
                await reads.list_runs(states=["queued"], saga="other"),
                await reads.read_log("r1"),
                await reads.read_log("r1", after_seq=1, limit=1),
                await reads.progress("r1"),
            )

        async def from_store() -> tuple[Any, ...]:
            async with open_store(f"sqlite://{filled}") as store:
                return await read(store)

        reader = _reader(filled)
        try:
            mine = finish_now(read(reader))
        finally:
            reader.close()
        assert mine == anyio.run(from_store)
        run, every, other, log, page, progress = mine
        assert (run.run_id, run.state) == ("r1", "running")
        assert [r.run_id for r in every] == ["r1", "r2"]
        assert [r.run_id for r in other] == ["r2"]
        assert [e.kind for e in log] == ["run_created", "run_started", "action_started"]
        assert [e.seq for e in page] == [2]
        assert progress == {"a": {"fraction": 0.5}}

    def test_an_unknown_run_names_the_database(self, filled: Path) -> None:
        reader = _reader(filled)
        with pytest.raises(RunNotFound, match=f"no run 'nope' in {filled}"):
            finish_now(reader.get_run("nope"))
        reader.close()

    def test_the_reader_cannot_write(self, filled: Path) -> None:
        """Opened read-only: a statement that writes is refused by SQLite."""
        reader = _reader(filled)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            finish_now(reader._query("DELETE FROM runs"))
        reader.close()
        assert [r.run_id for r in finish_now(_reader(filled).list_runs())] == ["r1", "r2"]


class TestTheStoreInstead:
    def test_not_sqlite(self) -> None:
        assert open_reader("postgresql://nobody@127.0.0.1:1/none") is None

    def test_no_database_yet(self, tmp_path: Path) -> None:
        """No file: the store creates it (`list` of a new store is empty, not an error)."""
        assert open_reader(f"sqlite://{tmp_path / 'new.db'}") is None
        assert not (tmp_path / "new.db").exists()
        done = sagactl("list", "--json", "--db", str(tmp_path / "new.db"))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"

    def test_migrations_to_apply(self, tmp_path: Path) -> None:
        """A store an older sagactl left: `list` applies the migrations, then reads."""
        path = tmp_path / "old.db"
        make_store(path, runs=1)
        with sqlite3.connect(path) as conn:
            conn.execute("DROP INDEX runs_started")  # what migrations 11 and 12 made
            conn.execute(  # definitions back in the runs' rows, where v12 found them
                "UPDATE runs SET definition = (SELECT body FROM run_definitions"
                " WHERE digest = runs.definition_digest)"
            )
            conn.execute("DROP TABLE run_definitions")
            conn.execute("ALTER TABLE runs DROP COLUMN definition_digest")
            conn.execute(
                "DELETE FROM schema_migrations WHERE version >= 11 AND namespace = ?", ["engine"]
            )
        conn.close()
        assert open_reader(f"sqlite://{path}") is None
        done = sagactl("list", "--json", "--db", str(path))
        assert done.returncode == 0, done.stderr
        assert '"run_id": "r0"' in done.stdout
        assert open_reader(f"sqlite://{path}") is not None

    def test_a_plugins_migrations_wait_for_the_store(
        self, filled: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A plugin's migration not applied yet: the reader reads the engine's tables all
        the same; the store applies it when it next opens."""
        registry = migrations._registry  # as it was, after the test
        monkeypatch.setattr(registry, "by_namespace", {**registry.by_namespace})
        monkeypatch.setattr(registry, "entry_points_loaded", registry.entry_points_loaded)
        table = "CREATE TABLE later_things (x INTEGER)"
        register_migrations("later", [Migration(1, {"sqlite": table, "postgresql": table})])
        reader = _reader(filled)
        assert finish_now(reader.get_run("r1")).run_id == "r1"
        reader.close()

        async def reopened() -> dict[str, int]:
            async with open_store(f"sqlite://{filled}") as store:
                return await store.migrations_applied()

        assert anyio.run(reopened)["later"] == 1

    def test_a_foreign_database_is_refused_as_the_store_refuses_it(self, tmp_path: Path) -> None:
        path = tmp_path / "other.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY)")
        conn.close()
        for command in (["status", "r"], ["logs", "r"], ["list"]):
            done = sagactl(*command, "--db", str(path))
            assert_one_line(done, str(path), "not a sagactl database")


def test_a_read_that_waits_needs_an_event_loop() -> None:
    """finish_now runs only what never waits; a coroutine that does is closed, not lost."""

    async def waits() -> int:
        await asyncio.sleep(0)
        return 1

    call = waits()
    with pytest.raises(RuntimeError, match="waited"):
        finish_now(call)
    assert call.cr_frame is None  # closed
