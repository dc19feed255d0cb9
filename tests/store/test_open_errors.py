"""A database that cannot serve as a store: one `error:` line naming it, exit 2, no traceback.

Each case runs the real `sagactl` CLI against a real bad database: an empty URL, a
directory, an immutable file, a read-only mount, a corrupt page, a file that is not SQLite,
a foreign SQLite file with a `runs` table, a missing PostgreSQL database. Nothing is written
to a database that is refused.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from sagactl.engine.store import NewRun, open_store

from .conftest import pg_server_url

SAGACTL = str(Path(sys.executable).with_name("sagactl"))
COMMANDS = [["list"], ["status", "r0"], ["logs", "r0"], ["stats"], ["db", "upgrade"]]
COMMANDS += [["resume", "--all"]]


def sagactl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SAGACTL_DB"}
    return subprocess.run(
        [SAGACTL, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def assert_one_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2 and exactly one `error:` line on stderr that contains every one of `words`."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def make_store(path: Path, runs: int = 0) -> None:
    """A real sagactl database with `runs` runs of a bulky definition."""

    async def fill() -> None:
        async with open_store(f"sqlite://{path}") as store:
            for i in range(runs):
                definition = {"format": 1, "name": "demo", "pad": "x" * 2000, "actions": {}}
                await store.create_run(NewRun(f"r{i}", "demo", "h", definition, {}), claim=False)

    anyio.run(fill)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestSqliteFiles:
    @pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
    def test_empty_url(self, command: list[str]) -> None:
        """`--db ""` names no database."""
        assert_one_line(sagactl(*command, "--db", ""), "names no file")

    def test_directory(self, tmp_path: Path) -> None:
        """A directory given as the database."""
        assert_one_line(sagactl("list", "--db", str(tmp_path)), str(tmp_path), "directory")

    def test_not_sqlite(self, tmp_path: Path) -> None:
        """A file that is not a SQLite database is refused and left as it was."""
        path = tmp_path / "notes.db"
        path.write_bytes(b"these are my notes, not a database\n" * 200)
        before = digest(path)
        for command in COMMANDS:
            assert_one_line(sagactl(*command, "--db", str(path)), str(path), "not a SQLite")
        assert digest(path) == before

    def test_foreign_sqlite_with_a_runs_table(self, tmp_path: Path) -> None:
        """Another program's SQLite file that happens to have a `runs` table is refused
        without a write: no migration table, no WAL switch, no owners directory."""
        path = tmp_path / "other.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, km REAL)")
            conn.execute("INSERT INTO runs (km) VALUES (5.2)")
        conn.close()
        before = digest(path)
        for command in COMMANDS:
            assert_one_line(
                sagactl(*command, "--db", f"sqlite://{path}"), str(path), "not a sagactl database"
            )
        assert digest(path) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]

    def test_corrupt_page(self, tmp_path: Path) -> None:
        """A database whose runs table has a corrupted page: reading it is one line."""
        path = tmp_path / "runs.db"
        make_store(path, runs=40)
        with sqlite3.connect(path) as conn:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'")
            page = root.fetchone()[0]
        conn.close()
        with path.open("r+b") as file:
            file.seek((page - 1) * page_size)
            file.write(b"\xff" * 64)
        line = assert_one_line(sagactl("list", "--db", str(path)), str(path))
        assert "corrupt" in line or "malformed" in line

    def test_immutable_file(self, tmp_path: Path, immutable: Callable[[Path], None]) -> None:
        """An immutable database (chattr +i): even `list` gives one line naming it."""
        path = tmp_path / "runs.db"
        make_store(path, runs=1)
        immutable(path)
        for command in COMMANDS:
            assert_one_line(sagactl(*command, "--db", str(path)), str(path), "not permitted")

    def test_read_only_mount(self, tmp_path: Path, read_only_mount: Callable[[Path], None]) -> None:
        """A database on a read-only mount, existing or not: one line naming it."""
        root = tmp_path / "mnt"
        root.mkdir()
        make_store(root / "runs.db", runs=1)
        read_only_mount(root)
        for name in ("runs.db", "new.db"):
            for command in COMMANDS:
                assert_one_line(
                    sagactl(*command, "--db", str(root / name)), str(root / name), "read-only"
                )


@pytest.mark.postgres
def test_worker_on_a_missing_postgres_database() -> None:
    """`sagactl worker` on a database the server does not have: one line, exit 2."""
    psycopg = pytest.importorskip("psycopg")
    server = pg_server_url().rstrip("/")
    base = server if server.count("/") > 2 else server + "/postgres"
    try:
        psycopg.connect(base, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    url = base.rsplit("/", 1)[0] + "/sagactl_store_branch_missing"
    for command in (["worker"], ["list"]):
        assert_one_line(sagactl(*command, "--db", url), "sagactl_store_branch_missing")


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """`chattr +i`, undone after the test."""
    done: list[Path] = []

    def make(path: Path) -> None:
        result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"chattr +i does not work here: {result.stderr.strip()}")
        done.append(path)

    yield make
    for path in done:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture
def read_only_mount() -> Iterator[Callable[[Path], None]]:
    """Bind-mounts a directory on itself read-only (needs root), undone after the test."""
    done: list[Path] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            pytest.skip("mounts need root")
        bound = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
        if bound.returncode != 0:
            pytest.skip(f"mount --bind is not allowed here: {bound.stderr.decode().strip()}")
        done.append(path)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        assert subprocess.run(["touch", str(path / "probe")], capture_output=True).returncode != 0

    yield make
    for path in done:
        subprocess.run(["umount", str(path)], check=True)


def test_a_migration_that_cannot_apply_is_one_line(tmp_path: Path) -> None:
    """A store whose tables are ahead of its recorded migrations (as an unreleased build
    left it): one line naming the store and the migration, exit 2, nothing recorded."""
    path = tmp_path / "ahead.db"
    make_store(path, runs=1)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE namespace = 'engine' AND version >= 5")
    recorded = "SELECT namespace, version FROM schema_migrations ORDER BY 1, 2"
    with sqlite3.connect(path) as conn:
        before = conn.execute(recorded).fetchall()
    done = sagactl("list", "--db", f"sqlite://{path}")
    assert_one_line(done, str(path), "engine v5", "duplicate column")
    with sqlite3.connect(path) as conn:  # the failed migration left nothing recorded
        assert conn.execute(recorded).fetchall() == before
