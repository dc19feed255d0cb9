"""The buildah storage driver `auto` picks: overlay where it works, an existing vfs store
kept (its images would vanish), an explicit driver as it is. Real buildah, real stores."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sagactl.plugins.builders import storage
from sagactl.plugins.builders.baseimage import buildah_args

pytestmark = pytest.mark.skipif(shutil.which("buildah") is None, reason="no buildah")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    root, run_root = tmp_path / "root", tmp_path / "run"
    yield root, run_root
    for driver in ("vfs", "overlay"):  # nothing mounted or root-owned left behind
        subprocess.run(
            [*buildah_args("buildah", driver, root, run_root), "rmi", "--all", "--force"],
            capture_output=True,
            check=False,
        )


def test_a_fresh_store_gets_overlay_where_it_works(store: tuple[Path, Path]) -> None:
    chosen = storage.resolve("buildah", "auto", *store)
    if chosen.driver == "vfs":  # a kernel or file system without overlay
        assert "overlay does not work here" in chosen.why
        return
    assert chosen == storage.Storage("overlay", why="overlay (the kernel's overlayfs)")
    assert buildah_args("buildah", "auto", *store)[1:3] == ["--storage-driver", "overlay"]


def test_a_store_holding_vfs_images_keeps_vfs(store: tuple[Path, Path], busybox_oci: str) -> None:
    """Its images keep working; the reason says how to switch."""
    subprocess.run(
        [*buildah_args("buildah", "vfs", *store), "pull", "--quiet", busybox_oci],
        check=True,
        capture_output=True,
    )
    chosen = storage.resolve("buildah", "auto", *store)
    assert chosen.driver == "vfs"
    assert "holds vfs images" in chosen.why and "SAGACTL_BUILDAH_DRIVER=overlay" in chosen.why
    listed = subprocess.run(
        [*buildah_args("buildah", "auto", *store), "images", "--quiet"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.strip()  # the vfs image is still seen


def test_an_explicit_driver_is_used_as_it_is(store: tuple[Path, Path]) -> None:
    configured = storage.Storage("vfs", why="vfs (configured)")
    assert storage.resolve("buildah", "vfs", *store) == configured
    assert storage.resolve("no-such-buildah-here", "auto").driver == "vfs"
