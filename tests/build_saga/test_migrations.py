"""The build tables arrive with the store's migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sagactl.engine.store.migrations", reason="the engine store has not landed")

from sagactl.actions.build_from_tar import records
from sagactl.engine.store import open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class TestMigrations:
    async def test_store_open_creates_the_tables(self, tmp_path: Path) -> None:
        """Opening a fresh store applies build v1: the records functions work at once."""
        url = f"sqlite://{tmp_path / 'store.db'}"
        async with open_store(url) as store:
            assert (await store.migrations_applied()).get("build") == 2
        async with open_store(url) as store, store.transaction() as tx:
            row = await tx.fetchone(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('apps', 'versions', 'sandboxes')"
            )
            assert row == (3,)
            allocated = await records.allocate_version(tx, "shop")
        assert allocated.version == "shop-v1"
