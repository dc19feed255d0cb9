"""Issue 4: staging a large tar from a pipe against `cat > file` + fsync, with flat memory."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .staging import SIZE_ENV, MiB, Piped, cat_to_file, make_tar, stager, start_consumer, tar_size

ROUNDS = 3


@pytest.fixture(scope="module")
def big_tar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The tar (1 GiB unless SAGACTL_BENCH_STAGE_MB says otherwise) and its sha256."""
    path = tmp_path_factory.mktemp("staging") / "app.tar"
    make_tar(path, tar_size())
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(MiB):
            digest.update(chunk)
    yield path, digest.hexdigest()
    path.unlink()  # a GiB per session is too much to leave in pytest's kept temp dirs


def _fresh(path: Path) -> None:
    if path.exists():
        path.unlink()


class TestStaging:
    def test_cat_and_fsync(self, benchmark: Any, big_tar: tuple[Path, str], tmp_path: Path) -> None:
        """Baseline: the tar piped through `cat > file`, then the file fsynced."""
        source, _ = big_tar
        dest = tmp_path / "copy.tar"
        size = source.stat().st_size
        benchmark.extra_info.update(key="staging_cat", units=size, size_env=SIZE_ENV)

        def setup() -> tuple[tuple[Piped], dict[str, Any]]:
            _fresh(dest)
            return (start_consumer(cat_to_file(dest), wait_ready=False),), {}

        benchmark.pedantic(lambda piped: piped.feed(source), setup=setup, rounds=ROUNDS)
        assert dest.stat().st_size == size
        dest.unlink()

    def test_stage_from_pipe(
        self, benchmark: Any, big_tar: tuple[Path, str], tmp_path: Path
    ) -> None:
        """sagactl's StagingArea reading the pipe: checked, hashed, fsynced, renamed."""
        source, sha256 = big_tar
        area = tmp_path / "staged"
        size = source.stat().st_size
        probe = start_consumer(stager(area, "probe-stream-0"), wait_ready=False)
        os.close(probe.write_end)
        probe.consumer.communicate()
        if probe.consumer.returncode == 3:
            pytest.skip("sagactl.actions.build.staging (StagingArea) is not on this branch yet")
        benchmark.extra_info.update(key="staging_pipe", units=size, size_env=SIZE_ENV)
        rounds: list[float] = []
        outputs: list[dict[str, Any]] = []

        def setup() -> tuple[tuple[Piped], dict[str, Any]]:
            for leftover in area.glob("*"):
                leftover.unlink()
            return (start_consumer(stager(area, "bench-stream-01"), wait_ready=True),), {}

        def stage(piped: Piped) -> None:
            out, peak_mb = piped.feed(source)
            outputs.append(json.loads(out))
            rounds.append(peak_mb)

        benchmark.pedantic(stage, setup=setup, rounds=ROUNDS)
        assert all(o["size"] == size and o["sha256"] == sha256 for o in outputs)
        assert Path(outputs[-1]["path"]).stat().st_size == size
        benchmark.extra_info["peak_rss_mb"] = round(max(rounds), 1)
