"""Real tar streams for the build tests, made with tarfile (and raw bytes where tarfile won't)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class M:
    """One member to write: kind is f(ile), d(ir), l (symlink), h(ardlink), c(har dev), p (fifo)."""

    name: str
    kind: str = "f"
    data: bytes = b""
    link: str = ""
    mode: int = 0o644


def make_tar(members: Iterable[M], *, gz: bool = False, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.mode = m.mode
            info.mtime = 1_700_000_000
            if m.kind == "f":
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
                continue
            info.type = {
                "d": tarfile.DIRTYPE,
                "l": tarfile.SYMTYPE,
                "h": tarfile.LNKTYPE,
                "c": tarfile.CHRTYPE,
                "b": tarfile.BLKTYPE,
                "p": tarfile.FIFOTYPE,
            }[m.kind]
            info.linkname = m.link
            tar.addfile(info)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def tar_of_dir(root: Path, *, gz: bool = False) -> bytes:
    """What `tar c -C root .` gives: members named `./...`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        tar.add(root, arcname=".")
    return buf.getvalue()


def gzip_bomb(prefix: bytes, zeros_mib: int) -> bytes:
    """A gzip stream of `prefix` then `zeros_mib` MiB of zeros, built without compressing them
    all: after a full flush, each 1 MiB block of zeros compresses to the same bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + block * zeros_mib + compressor.flush()


def listing(root: Path) -> set[str]:
    """Every path under root, relative, for 'nothing written outside' checks."""
    found = set()
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            found.add(os.path.relpath(os.path.join(directory, name), root))
    return found
