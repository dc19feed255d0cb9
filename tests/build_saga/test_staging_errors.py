"""Issue 10, item 17: a build whose staging fails on the machine's side (a full disk, a build
directory that cannot exist) says so, instead of blaming a consumed upload."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import StandInContext
from sagactl.actions.build_from_tar.settings import BuildSettings
from sagactl.actions.build_from_tar.steps.receive import ReceiveTar
from sagactl.actions.build_from_tar.streams import StreamGone, StreamRegistry
from sagactl.engine import FatalError
from tars import M, make_tar

SAGACTL = str(Path(sys.executable).with_name("sagactl"))


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (unmounted afterwards), skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _build(env: dict[str, str], data: bytes) -> tuple[int, list[str], str]:
    result = subprocess.run(
        [SAGACTL, "build", "diskfull", "-"], input=data, env=env, capture_output=True, timeout=120
    )
    stderr = result.stderr.decode()
    return result.returncode, [ln for ln in stderr.splitlines() if ln.startswith("error")], stderr


def _app(size: int) -> bytes:
    return make_tar([M("index.html", data=b"<p>hi</p>"), M("blob.bin", data=os.urandom(size))])


@pytest.mark.slow
class TestStagingFailures:
    def test_full_disk_names_enospc(self, full_disk: Path, cli_env: dict[str, str]) -> None:
        """Staging a 3 MiB upload onto a 1 MiB tmpfs fails with "No space left on device" in
        the one error line (it said the upload was gone, read by an earlier attempt); nothing
        is left on the disk."""
        env = {**cli_env, "SAGACTL_BUILD_DIR": str(full_disk / "state")}
        code, errors, stderr = _build(env, _app(3 << 20))
        assert code == 1, stderr
        assert len(errors) == 1, stderr
        assert "No space left on device" in errors[0], errors[0]
        assert "gone" not in errors[0] and "earlier attempt" not in errors[0]
        staging = full_disk / "state" / "staging"
        assert list(staging.iterdir()) == [] if staging.exists() else True

    def test_bad_build_dir_names_it(self, cli_env: dict[str, str]) -> None:
        """A build directory under a file is refused at start-up, naming it (exit 2)."""
        env = {**cli_env, "SAGACTL_BUILD_DIR": "/dev/null/x"}
        code, errors, stderr = _build(env, _app(100))
        assert code == 2, stderr
        assert len(errors) == 1 and "/dev/null/x" in errors[0], stderr
        assert "gone" not in errors[0]


class TestReceiveStep:
    @pytest.mark.anyio
    async def test_unusable_staging_dir_named_before_the_reader_is_taken(
        self, sqlite_db: Any, deps: Any, tmp_path: Path
    ) -> None:
        """Settings given in code (no start-up check) with a state dir under a file: the
        receive step names the directory and why, and leaves the upload's reader unread."""
        (tmp_path / "file").write_text("x")
        settings = replace(deps.get(BuildSettings), state_dir=tmp_path / "file" / "state")
        deps.provide(BuildSettings, settings)
        registry = deps.get(StreamRegistry)
        stream_id = registry.register(io.BytesIO(_app(100)))
        with pytest.raises(FatalError) as info:
            await ReceiveTar().execute(StandInContext(sqlite_db, deps), {"stream_id": stream_id})
        assert str(info.value) == (
            f"staging directory {tmp_path}/file/state/staging is unusable: Not a directory"
        )
        assert registry.claim(stream_id) is not None


class TestRegistryKeepsTheCause:
    def test_later_claim_reports_why_the_first_attempt_failed(self) -> None:
        """A retry that finds the reader consumed is told what consumed it."""
        registry = StreamRegistry()
        stream_id = registry.register(io.BytesIO(b"x"))
        registry.claim(stream_id)
        registry.failed(stream_id, "No space left on device")
        with pytest.raises(StreamGone, match="earlier attempt, which failed: No space left"):
            registry.claim(stream_id)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
