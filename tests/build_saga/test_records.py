"""Platform records on real SQLite and PostgreSQL: allocation, versions, activation, sandboxes."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from sagactl.actions.build_from_tar import records
from sagactl.engine import InputError

pytestmark = pytest.mark.anyio

DIGEST = "sha256:" + "a" * 64


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")


async def _version(db: Any, app: str) -> str:
    async with db.transaction() as tx:
        allocated = await records.allocate_version(tx, app)
        await records.create_version(
            tx,
            app=app,
            version=allocated.version,
            number=allocated.number,
            artifact_id=allocated.artifact_id,
            image=f"oci:/x:{allocated.version}",
            digest=DIGEST,
            services={"web": {"command": "x", "port": 8080}},
        )
    return allocated.version


class TestRecords:
    async def test_allocation_counts_up(self, db: Any) -> None:
        """Versions of one app are numbered 1, 2, 3; another app starts at 1."""
        names = [await _version(db, "shop") for _ in range(3)]
        assert names == ["shop-v1", "shop-v2", "shop-v3"]
        assert await _version(db, "blog") == "blog-v1"

    async def test_rolled_back_allocation_is_not_taken(self, db: Any) -> None:
        """An allocation whose transaction rolls back (a crash) leaves the number free."""
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await records.allocate_version(tx, "shop")
                raise RuntimeError("crash before commit")
        assert await _version(db, "shop") == "shop-v1"

    async def test_concurrent_allocations_never_collide(self, db: Any) -> None:
        """16 concurrent allocations of one app get 16 different numbers."""
        got: list[int] = []

        async def one() -> None:
            async with db.transaction() as tx:
                got.append((await records.allocate_version(tx, "shop")).number)

        async with anyio.create_task_group() as tg:
            for _ in range(16):
                tg.start_soon(anyio.to_thread.run_sync, lambda: anyio.run(one))
        assert sorted(got) == list(range(1, 17))

    async def test_activation_moves_forward_and_restores(self, db: Any) -> None:
        """activate returns the previous version; an older one never replaces a newer one;
        restore only undoes its own activation."""
        v1, v2 = await _version(db, "shop"), await _version(db, "shop")
        async with db.transaction() as tx:
            assert await records.activate(tx, "shop", v2) == (None, True)
            assert await records.activate(tx, "shop", v1) == (v2, False)
            assert await records.restore_active(tx, "shop", v1, None) is False
            assert await records.restore_active(tx, "shop", v2, None) is True
            assert (await records.show_app(tx, "shop"))["active_version"] is None

    async def test_activate_unknown(self, db: Any) -> None:
        """Activating a version that does not exist is an input error."""
        await _version(db, "shop")
        async with db.transaction() as tx:
            with pytest.raises(InputError, match="no version 'shop-v9'"):
                await records.activate(tx, "shop", "shop-v9")

    async def test_delete_version_spares_the_active_one(self, db: Any) -> None:
        """delete_version removes an inactive version but never the active one."""
        v1, v2 = await _version(db, "shop"), await _version(db, "shop")
        async with db.transaction() as tx:
            await records.activate(tx, "shop", v1)
            assert await records.delete_version(tx, v1) is False
            assert await records.delete_version(tx, v2) is True
            shown = await records.show_app(tx, "shop")
        assert [v["version"] for v in shown["versions"]] == [v1]

    async def test_sandboxes(self, db: Any) -> None:
        """Running sandboxes of older versions are listed, then marked stopped."""
        v1, v2 = await _version(db, "shop"), await _version(db, "shop")
        async with db.transaction() as tx:
            for sandbox_id, version in (("s1", v1), ("s2", v2)):
                await records.add_sandbox(
                    tx,
                    records.SandboxRecord(
                        sandbox_id,
                        "shop",
                        version,
                        "web",
                        "local",
                        "running",
                        123,
                        "9",
                        "x",
                        None,
                        records.now(),
                        None,
                    ),
                )
            older = await records.running_sandboxes(tx, "shop", older_than=2)
            assert [s.id for s in older] == ["s1"]
            await records.mark_sandbox(tx, "s1", "stopped")
            assert [s.id for s in await records.running_sandboxes(tx, "shop")] == ["s2"]
            shown = await records.show_app(tx, "shop")
        by_version = {v["version"]: v["sandboxes"] for v in shown["versions"]}
        assert by_version[v1][0]["state"] == "stopped"
        assert by_version[v2][0]["state"] == "running"

    async def test_show_unknown_app(self, db: Any) -> None:
        """show_app of an unknown app is an input error."""
        async with db.transaction() as tx:
            with pytest.raises(InputError, match="no app named 'ghost'"):
                await records.show_app(tx, "ghost")
