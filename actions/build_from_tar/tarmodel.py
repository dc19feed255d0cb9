"""What a checked tar holds: its members, and the limits an upload is checked against."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import Enum

GiB = 1 << 30
MiB = 1 << 20
PATH_MAX = 4096
"""Linux's limit on a path passed to a system call, its terminating NUL included."""
NAME_MAX = 255


@dataclass(frozen=True, slots=True)
class StagingLimits:
    """Caps on an upload; every one is checked while the bytes stream in."""

    max_upload_bytes: int = 2 * GiB
    """Bytes received as sent (compressed if gzip)."""
    max_total_bytes: int = 2 * GiB
    """Bytes of tar stream actually decompressed: a gzip bomb stops here."""
    max_member_bytes: int = 2 * GiB
    max_members: int = 100_000
    max_path_bytes: int = 4096
    max_component_bytes: int = NAME_MAX
    max_link_depth: int = 40
    """Symlinks followed while resolving one link (as the kernel's SYMLOOP_MAX)."""
    max_header_bytes: int = 1 * MiB
    """Size of the pax and GNU long-name headers' data before one member."""
    max_listing_bytes: int = 64 * MiB
    """All member names and link targets together: what the whole-archive checks keep in
    memory until the end (real apps of 100,000 files need about 10 MiB)."""
    max_links_per_file: int = 60_000
    """Hard links to one file (ext4 allows 65,000 names per inode)."""

    file_caps: tuple[tuple[str, int], ...] = ()
    """(member name, bytes): files a later step reads whole, refused from their header
    when larger (the Procfile, app.toml)."""
    unpack_root_bytes: int = 0
    """Length of the directory members are unpacked under (see `under`)."""

    def under(self, root: str | os.PathLike[str]) -> StagingLimits:
        """These limits for an archive unpacked under `root`."""
        return replace(self, unpack_root_bytes=len(os.fsencode(root)))

    @property
    def max_name_bytes(self) -> int:
        """The longest member name: the kernel's PATH_MAX counts the unpack root, the `/`
        after it and the terminating NUL too."""
        root = self.unpack_root_bytes + 1 if self.unpack_root_bytes else 0
        return max(0, min(self.max_path_bytes, PATH_MAX - 1 - root))


class Kind(Enum):
    FILE = "file"
    DIR = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hard link"


@dataclass(frozen=True, slots=True)
class Member:
    """One checked member. `name` is normalised (`./a//b/` is `a/b`; the root is `""`)."""

    name: str
    kind: Kind
    size: int
    mode: int
    mtime: int
    target: str | None = None
    """A symlink's target as written, or a hard link's normalised target."""


def show(name: str, width: int = 100) -> str:
    """A member name fit for an error line: non-UTF-8 bytes and control characters escaped,
    and a long one cut in the middle, so one error stays one short line."""
    shown = repr(name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    if len(shown) <= width:
        return shown
    return f"{shown[: width - 25]}...{shown[-20:]}"
