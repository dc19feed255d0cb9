"""Paths that must stay under a root: resolved checks and openat-style walks without symlinks.

A layout or source tree may hold symlinks that lead out (planted by an upload, or raced in);
every component is opened relative to its parent with O_NOFOLLOW, so no link is followed.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path, PurePosixPath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class OutsideRoot(OSError):
    """A path that leaves its root, or passes through a symlink."""


def _parts(relative: str | PurePosixPath) -> list[str]:
    path = PurePosixPath(relative)
    if path.is_absolute() or any(part in ("..", "") for part in path.parts):
        raise OutsideRoot(f"{str(relative)!r:.200} is not a plain relative path")
    return [part for part in path.parts if part != "."]


def open_beneath(root: Path, relative: str | PurePosixPath, flags: int = os.O_RDONLY) -> int:
    """A file descriptor for `root/relative`, refusing `..`, absolute parts and any symlink
    on the way (the last component included). `flags` applies to the last component."""
    parts = _parts(relative)
    if not parts:
        raise OutsideRoot("an empty path names the root itself")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the root is ours
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # O_NOFOLLOW met a symlink
            raise OutsideRoot(f"{relative} passes through a symlink under {root}") from None
        raise
    finally:
        os.close(fd)


def read_beneath(root: Path, relative: str | PurePosixPath, limit: int) -> bytes:
    """The bytes of a regular file under `root`, at most `limit` of them."""
    fd = open_beneath(root, relative)
    with os.fdopen(fd, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise OutsideRoot(f"{relative} is larger than {limit} bytes")
    return data


def inside(root: Path, path: Path) -> Path:
    """`path` resolved, when it stays under `root` resolved; OutsideRoot otherwise."""
    resolved_root = root.resolve()
    resolved = path.resolve()
    if resolved != resolved_root and not resolved.is_relative_to(resolved_root):
        raise OutsideRoot(f"{path} leaves {root}")
    return resolved
