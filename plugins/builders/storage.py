"""Which storage driver buildah uses: overlay where this machine can mount it, else vfs.

vfs copies every layer in full for each step and each container, so a source-only rebuild
on a 200 MB base takes a minute or more; overlay stacks layers and takes seconds. The
default (`auto`) picks, once per process and store:

1. a store that already holds vfs images and none in overlay keeps vfs, so its images keep
   working (switching drivers hides them: they are not converted); the reason says how to
   switch (`SAGACTL_BUILDAH_DRIVER=overlay`, the bases are made again);
2. overlay with the kernel's overlayfs, when buildah can set it up on this store;
3. overlay through fuse-overlayfs (Debian's `fuse-overlayfs`, with /dev/fuse), when the
   kernel's cannot be used;
4. vfs, saying why and that rebuilds are slow.

A driver named explicitly is used as it is.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

AUTO = "auto"
FUSE_OVERLAYFS = "/usr/bin/fuse-overlayfs"


@dataclass(frozen=True, slots=True)
class Storage:
    driver: str
    options: tuple[str, ...] = ()
    """`--storage-opt` values (fuse-overlayfs's mount program)."""
    why: str = ""

    def args(self) -> list[str]:
        args = ["--storage-driver", self.driver]
        for option in self.options:
            args += ["--storage-opt", option]
        return args


def _global(buildah: str, root: Path | None, run_root: Path | None) -> list[str]:
    args = [buildah]
    if root is not None:
        args += ["--root", str(root)]
    if run_root is not None:
        args += ["--runroot", str(run_root)]
    return args


def _probe(command: list[str], storage: Storage) -> tuple[dict[str, object] | None, str]:
    """buildah's `info` store section with `storage`, or None and buildah's complaint."""
    try:
        done = subprocess.run(
            [*command, *storage.args(), "info"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return None, lines[-1] if lines else f"exit status {done.returncode}"
    try:
        store = json.loads(done.stdout).get("store") or {}
    except ValueError:
        return None, "unreadable `buildah info` output"
    return store if isinstance(store, dict) else {}, ""


def _holds_images(root: Path, driver: str) -> bool:
    try:
        images = json.loads((root / f"{driver}-images" / "images.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(images, list) and bool(images)


@functools.lru_cache(maxsize=16)
def resolve(
    buildah: str, requested: str, root: Path | None = None, run_root: Path | None = None
) -> Storage:
    """The storage buildah uses for `requested` (`auto` or a driver name) on this store."""
    if requested != AUTO:
        return Storage(requested, why=f"{requested} (configured)")
    if shutil.which(buildah) is None:
        return Storage("vfs", why="vfs (buildah is not installed)")
    command = _global(buildah, root, run_root)
    overlay = Storage("overlay", why="overlay (the kernel's overlayfs)")
    store, complaint = _probe(command, overlay)
    graph_root = Path(str(store.get("GraphRoot") or root or "")) if store else root
    if (
        graph_root is not None
        and _holds_images(graph_root, "vfs")
        and not _holds_images(graph_root, "overlay")
    ):
        return Storage(
            "vfs",
            why=f"vfs, kept: {graph_root} holds vfs images, which overlay would not see; "
            "set SAGACTL_BUILDAH_DRIVER=overlay to switch (much faster rebuilds; the "
            "bases are made again, and `buildah --storage-driver vfs rmi --all` frees "
            "the old ones)",
        )
    if store is not None:
        return overlay
    fuse = Storage(
        "overlay",
        (f"overlay.mount_program={FUSE_OVERLAYFS}",),
        why=f"overlay through fuse-overlayfs (the kernel's overlayfs: {complaint})",
    )
    if os.path.exists(FUSE_OVERLAYFS) and os.path.exists("/dev/fuse"):
        fuse_store, fuse_complaint = _probe(command, fuse)
        if fuse_store is not None:
            return fuse
        complaint = f"{complaint}; fuse-overlayfs: {fuse_complaint}"
    return Storage(
        "vfs",
        why=f"vfs: overlay does not work here ({complaint}); rebuilds copy whole layers and "
        "are slow (installing Debian's fuse-overlayfs may help)",
    )
