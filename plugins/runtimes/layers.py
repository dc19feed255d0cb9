"""One image layer unpacked as an overlayfs lower directory, and roots mounted from them.

A layer's tar (gzip or plain) is extracted by GNU tar as root, keeping owners, modes and
file capabilities: it refuses member names with `..`, and makes symlinks only after the
regular members, so no entry is written through a link the same layer made. The OCI
whiteouts are then turned into overlayfs's: `.wh.NAME` becomes a 0/0 character device
NAME, `.wh..wh..opq` marks its directory opaque (`trusted.overlay.opaque=y`). A root is a
read-only overlay mount of its image's layer directories (and one holding the mount
points runc needs), so versions that share a base
share its files on disk, and a new version unpacks only the layers it does not share.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MOUNT_POINTS = ".mountpoints"
TAR_ARGS = (
    "--extract",
    "--numeric-owner",
    "--same-owner",
    "--same-permissions",
    "--xattrs",
    "--xattrs-include=security.capability",
    "--xattrs-include=user.*",
)


class LayerError(RuntimeError):
    """A layer could not be unpacked or a root could not be mounted."""


def _run(argv: Sequence[str], what: str, cwd: Path | None = None) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, cwd=cwd)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise LayerError(f"{what} failed: {tail}")


def _overlay_whiteouts(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            if not name.startswith(WHITEOUT):
                continue
            path = os.path.join(directory, name)
            os.unlink(path)
            if name == OPAQUE:
                os.setxattr(directory, "trusted.overlay.opaque", b"y")
            else:
                os.mknod(os.path.join(directory, name[len(WHITEOUT) :]), stat.S_IFCHR, 0)


def extract(blob: Path, target: Path) -> None:
    """Unpacks the layer `blob` into `target` (made here; it must not exist)."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _run(["tar", *TAR_ARGS, "--file", str(blob), "--directory", str(partial)], "tar")
        _overlay_whiteouts(partial)
        partial.replace(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def mount(rootfs: Path, layers_dir: Path, layers: Sequence[str]) -> None:
    """Mounts the read-only overlay of `layers` (names in `layers_dir`, bottom first)."""
    rootfs.mkdir(parents=True, exist_ok=True)
    # On top, the directories runc mounts over (the root is read-only, so runc cannot
    # make them); it also gives a one-layer image the two lower layers overlayfs needs.
    top = layers_dir / MOUNT_POINTS
    for name in ("proc", "dev", "sys", "tmp"):
        (top / name).mkdir(parents=True, exist_ok=True)
    (top / "tmp").chmod(0o1777)  # runc gives a tmpfs its mount point's mode
    lower = [MOUNT_POINTS, *reversed(layers)]  # overlayfs lists the top layer first
    # Names relative to layers_dir (mount's working directory) keep the options short.
    options = f"lowerdir={':'.join(lower)}"
    _run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(rootfs)],
        "mounting the image's root",
        cwd=layers_dir,
    )


def bind(source: Path, rootfs: Path) -> None:
    """Binds `source` (a root another tool mounted) at `rootfs`."""
    _run(["mount", "--bind", str(source), str(rootfs)], "binding the image's root")


def is_mounted(path: Path) -> bool:
    """Whether something is mounted at `path` (a bind mount from the same file system
    included, which `os.path.ismount` cannot tell)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
        for line in mounts:
            point = line.split(" ", 5)[4]
            if _unescape(point) == target:
                return True
    return False


def _unescape(field: str) -> str:
    """A mountinfo path field: space, tab, newline and backslash are octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def unmount(rootfs: Path) -> None:
    if is_mounted(rootfs):
        _run(["umount", str(rootfs)], f"unmounting {rootfs}")


def overlay_supported() -> bool:
    try:
        with open("/proc/filesystems", encoding="ascii") as known:
            return any(line.split()[-1] == "overlay" for line in known if line.strip())
    except OSError:
        return False
