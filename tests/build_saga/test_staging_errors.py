"""Issue 10, item 17: a build whose staging fails on the machine's side (a full disk, a build
directory that cannot exist) says so, instead of blaming a consumed upload."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sagactl.actions.build_from_tar.streams import StreamGone, StreamRegistry
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
        """A build directory under a file says which directory and why."""
        env = {**cli_env, "SAGACTL_BUILD_DIR": "/dev/null/x"}
        code, errors, stderr = _build(env, _app(100))
        assert code == 1, stderr
        assert len(errors) == 1, stderr
        assert "/dev/null/x/staging is unusable: Not a directory" in errors[0], errors[0]
        assert "gone" not in errors[0]


class TestRegistryKeepsTheCause:
    def test_later_claim_reports_why_the_first_attempt_failed(self) -> None:
        """A retry that finds the reader consumed is told what consumed it."""
        registry = StreamRegistry()
        stream_id = registry.register(io.BytesIO(b"x"))
        registry.claim(stream_id)
        registry.failed(stream_id, "No space left on device")
        with pytest.raises(StreamGone, match="earlier attempt, which failed: No space left"):
            registry.claim(stream_id)
