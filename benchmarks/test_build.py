"""Issue 4: build-from-tar on the oci builder, against its steps called directly, and
8 concurrent builds against 8 sequential ones."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from .builds import APP_ENV, Builds, app_padding, make_app_tar, stop_sandboxes, unavailable
from .pairing import paired

BUILDS = 8


@pytest.fixture
def builds(tmp_path: Path) -> Iterator[Builds]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    tar = tmp_path / "app.tar"
    make_app_tar(tar, app_padding())
    yield Builds(tar, tmp_path / "state", tmp_path / "sagactl.sqlite")
    stop_sandboxes(tmp_path / "state")


class TestBuild:
    def test_saga_vs_direct(self, benchmark: Any, builds: Builds, runner: asyncio.Runner) -> None:
        """The whole build-from-tar run; the same actions called directly between rounds."""
        rounds = 8
        results = paired(
            benchmark,
            lambda: runner.run(builds.with_engine("bench-app")),
            lambda: runner.run(builds.direct("bench-direct")),
            key="build_saga",
            units=1,
            baseline_key="build_direct",
            baseline_units=1,
            rounds=rounds,
        )
        benchmark.extra_info.update(tar_bytes=builds.tar.stat().st_size, app_env=APP_ENV)
        assert results.ok and results.version == f"bench-app-v{rounds}"
        assert results.image and results.digest.startswith("sha256:")
        assert not any((builds.state_dir / "staging").glob("*.tar")), "staged upload left"

    def test_concurrent_vs_sequential(
        self, benchmark: Any, builds: Builds, runner: asyncio.Runner
    ) -> None:
        """8 builds at once (8 apps, one process); 8 one after another between rounds."""
        rounds = 3

        async def sequential() -> None:
            for i in range(BUILDS):
                assert (await builds.with_engine(f"seq-{i}")).ok

        async def concurrent() -> list[Any]:
            results: list[Any] = []

            async def one(i: int) -> None:
                results.append(await builds.with_engine(f"conc-{i}"))

            async with anyio.create_task_group() as group:
                for i in range(BUILDS):
                    group.start_soon(one, i)
            return results

        results = paired(
            benchmark,
            lambda: runner.run(concurrent()),
            lambda: runner.run(sequential()),
            key="builds_concurrent",
            units=BUILDS,
            baseline_key="builds_sequential",
            baseline_units=BUILDS,
            rounds=rounds,
        )
        assert len(results) == BUILDS and all(r.ok for r in results)
        assert {r.version for r in results} == {f"conc-{i}-v{rounds}" for i in range(BUILDS)}
