"""Issue 4: staging a large tar from a pipe against `cat > file` + fsync, with flat memory."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .pairing import paired
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


class TestStaging:
    def test_stage_from_pipe(
        self, benchmark: Any, big_tar: tuple[Path, str], tmp_path: Path
    ) -> None:
        """sagactl's StagingArea reading a pipe (checked, hashed, fsynced, renamed), each
        round preceded by the baseline: the same pipe into `cat > file` and an fsync."""
        source, sha256 = big_tar
        area, copy = tmp_path / "staged", tmp_path / "copy.tar"
        size = source.stat().st_size
        probe = start_consumer(stager(area, "probe-stream-0"), wait_ready=False)
        os.close(probe.write_end)
        probe.consumer.communicate()
        if probe.consumer.returncode == 3:
            pytest.skip(
                "sagactl.actions.build_from_tar.staging (StagingArea) is not on this branch yet"
            )
        outputs: list[dict[str, Any]] = []

        def baseline() -> None:
            start_consumer(cat_to_file(copy), wait_ready=False).feed(source)
            assert copy.stat().st_size == size

        def prepare() -> tuple[Piped]:
            # Deleting a GiB takes a while (the disk is mounted with `discard`): untimed.
            copy.unlink()
            for leftover in area.glob("*"):
                leftover.unlink()
            return (start_consumer(stager(area, "bench-stream-01"), wait_ready=True),)

        def stage(piped: Piped) -> None:
            outputs.append(json.loads(piped.feed(source)))

        try:
            paired(
                benchmark,
                stage,
                baseline,
                prepare=prepare,
                key="staging_pipe",
                units=size,
                baseline_key="staging_cat",
                baseline_units=size,
                rounds=ROUNDS,
            )
            peak_kb = max(o["peak_rss_kb"] for o in outputs)
            benchmark.extra_info.update(peak_rss_mb=round(peak_kb / 1024, 1), size_env=SIZE_ENV)
            assert all(o["size"] == size and o["sha256"] == sha256 for o in outputs)
            assert Path(outputs[-1]["path"]).stat().st_size == size
        finally:  # a GiB per file is too much to leave in pytest's kept temp dirs
            copy.unlink(missing_ok=True)
            for leftover in area.glob("*"):
                leftover.unlink()
