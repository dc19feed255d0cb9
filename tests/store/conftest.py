"""Fixtures of the shared store suite: every test runs against every backend.

A backend is one entry of `BACKENDS` and one branch of `store_url`; the PostgreSQL store
adds "postgresql" there (a fresh database per test) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from sagactl.engine.store import Migration, Store, open_store, register_migrations
from sagactl.engine.store.sqlite import SqliteStore

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
PG_ENV = "SAGACTL_TEST_PG"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/"
PG_DATABASE = "sagactl_test_pg"


def pg_server_url() -> str:
    """The server under test: `$SAGACTL_TEST_PG`, else the local one (user postgres)."""
    return os.environ.get(PG_ENV, PG_DEFAULT)


def pg_database_url() -> str:
    """A database of our own on that server, created on first use (never another's)."""
    import psycopg

    server = pg_server_url()
    base = server if server.rstrip("/").count("/") > 2 else server.rstrip("/") + "/postgres"
    try:
        with psycopg.connect(base, autocommit=True, connect_timeout=3) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)
            ).fetchone()
            if found is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server answers at {server} (set {PG_ENV}): {exc}")
    return base.rsplit("/", 1)[0] + "/" + PG_DATABASE


@contextlib.contextmanager
def pg_schema(prefix: str) -> Iterator[str]:
    """A fresh, empty schema in our database, as a URL whose search_path points at it;
    dropped afterwards."""
    import psycopg

    url = pg_database_url()
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{url}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


# A platform table of our own, as another package would register one.
register_migrations(
    "storetest",
    [
        Migration(
            1,
            {
                "sqlite": "CREATE TABLE widgets (name TEXT PRIMARY KEY, size INTEGER NOT NULL);",
                "postgresql": "CREATE TABLE widgets (name TEXT PRIMARY KEY, size BIGINT NOT NULL);",
            },
        )
    ],
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of the backend under test."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'log.db'}"
    elif request.param == "postgresql":
        with pg_schema("t") as url:
            yield url
    else:
        raise NotImplementedError(request.param)


StoreOpener = Callable[[], AbstractAsyncContextManager[Store]]


@pytest.fixture
def opener(store_url: str) -> StoreOpener:
    """Opens another store on the same database (a second process, or a restart)."""

    @asynccontextmanager
    async def open_() -> AsyncIterator[Store]:
        async with open_store(store_url) as store:
            yield store

    return open_


@pytest.fixture
async def store(opener: StoreOpener) -> AsyncIterator[Store]:
    async with opener() as opened:
        yield opened


@pytest.fixture
def sqlite_traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement the SQLite store's connections run, with its values inlined."""
    seen: list[str] = []
    connect = SqliteStore._connect

    def traced(self: SqliteStore) -> sqlite3.Connection:
        conn = connect(self)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(SqliteStore, "_connect", traced)
    yield seen
