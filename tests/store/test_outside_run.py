"""`Store.transaction()`: reads and writes outside any run, on every backend."""

from __future__ import annotations

import pytest
from sagactl.engine.store import Store

from .conftest import StoreOpener

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


class TestOutsideRun:
    async def test_block_commits_when_it_ends(self, store: Store, opener: StoreOpener) -> None:
        """Writes in the block are visible to another store once the block has ended."""
        async with store.transaction() as tx:
            assert tx.dialect == store.dialect
            assert await tx.execute("INSERT INTO widgets VALUES (?, ?)", ("w1", 3)) == 1
            assert await tx.fetchone("SELECT size FROM widgets WHERE name = ?", ("w1",)) == (3,)
        async with opener() as other, other.transaction() as tx:
            assert await tx.fetchall("SELECT name, size FROM widgets") == [("w1", 3)]

    async def test_block_that_raises_rolls_back(self, store: Store) -> None:
        """An exception in the block drops every write of the block and propagates."""
        with pytest.raises(Boom):
            async with store.transaction() as tx:
                await tx.execute("INSERT INTO widgets VALUES (?, ?)", ("w1", 3))
                raise Boom
        async with store.transaction() as tx:
            assert await tx.fetchall("SELECT * FROM widgets") == []

    async def test_failing_statement_rolls_back_the_whole_block(self, store: Store) -> None:
        """A statement the database refuses (a foreign key: enforced on every backend)
        raises, and the block's earlier writes are gone with it."""
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            async with store.transaction() as tx:
                await tx.execute("INSERT INTO widgets VALUES (?, ?)", ("w1", 3))
                await tx.execute(
                    "INSERT INTO run_log VALUES (?, 1, 0, 'x', NULL, '{}')", ("no-such-run",)
                )
        async with store.transaction() as tx:
            assert await tx.fetchall("SELECT * FROM widgets") == []

    async def test_placeholders_inside_quotes_are_text(self, store: Store) -> None:
        """`?` and `%` inside quoted text stay text; only real placeholders take values."""
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO widgets VALUES (?, ?)", ("a?b%c", 1))
            row = await tx.fetchone(
                "SELECT '?', 'it''s ?', name, size FROM widgets WHERE name = ? -- a ? here",
                ("a?b%c",),
            )
        assert row == ("?", "it's ?", "a?b%c", 1)

    async def test_migrated_tables_are_there(self, store: Store) -> None:
        """Opening the store applied every registered migration: no schema fallback."""
        async with store.transaction() as tx:
            assert await tx.fetchone("SELECT count(*) FROM widgets") == (0,)

    async def test_closed_store_refuses(self, opener: StoreOpener) -> None:
        """A transaction on a closed store fails clearly instead of reconnecting."""
        async with opener() as store:
            pass
        with pytest.raises(Exception, match="closed"):
            async with store.transaction():
                pass


class TestSqliteSettings:
    async def test_sqlite_transactions_use_the_store_pragmas(self, store: Store) -> None:
        """On SQLite the connection is the store's: WAL, synchronous=FULL, foreign keys,
        the busy timeout."""
        if store.dialect != "sqlite":
            pytest.skip("SQLite pragmas")
        async with store.transaction() as tx:
            assert await tx.fetchone("PRAGMA journal_mode") == ("wal",)
            assert await tx.fetchone("PRAGMA synchronous") == (2,)
            assert await tx.fetchone("PRAGMA foreign_keys") == (1,)
            busy = await tx.fetchone("PRAGMA busy_timeout")
            assert busy is not None and int(str(busy[0])) >= 1000
