"""Reads a file of an unpacked upload within its size cap: the size is checked before reading,
and the read itself stops one byte past the cap, so no file makes a reader hold more."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sagactl.engine import InputError, Location

CHUNK = 64 << 10


def read_capped(root: Path, path: Path, cap: int) -> bytes:
    """The bytes of `path` (under `root`, symlinks inside the upload followed), at most `cap`.

    InputError, naming the file as the upload names it, when it leads outside `root`, is not
    a regular file, or holds more than `cap` bytes (by its size, or by what a read returns).
    """
    name = path.relative_to(root).as_posix()
    where = Location(name)
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(root)):
        raise InputError("leads outside the app (through a symlink)", where)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError("is a dangling symlink", where) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError("is not a regular file", where)
        if info.st_size > cap:
            raise InputError(f"{info.st_size} bytes, over the limit of {cap}", where)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(CHUNK, cap + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                raise InputError(f"more than {cap} bytes, over the limit", where)
        return b"".join(chunks)
    finally:
        os.close(fd)
