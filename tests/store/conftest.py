"""Fixtures of the shared store suite: every test runs against every backend.

A backend is one entry of `BACKENDS` and one branch of `store_url`; the PostgreSQL store
adds "postgresql" there (a fresh database per test) and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from sagactl.engine.store import Migration, Store, open_store, register_migrations

BACKENDS = ["sqlite"]

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
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of the backend under test."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'log.db'}"
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
