"""Push parser for tar streams that checks every member as it arrives (names, types, links, caps).

One parser serves both staging (check while the upload streams in) and extraction (the same
parser walks the staged file), so what was checked is exactly what is unpacked: no second tar
reader with its own reading of the format. Headers are decoded by `tarfile.TarInfo.frombuf`
(checksums, base-256 numbers, ustar prefixes); sequencing, pax and GNU long names, data
skipping and every rule are ours, because `tarfile`'s stream mode ignores truncation.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from sagactl.engine import InputError

BLOCK = 512
GiB = 1 << 30
MiB = 1 << 20


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
    max_component_bytes: int = 255
    max_link_depth: int = 40
    """Symlinks followed while resolving one link (as the kernel's SYMLOOP_MAX)."""
    max_header_bytes: int = 1 * MiB
    """Size of one pax or GNU long-name header's data."""


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


_REGULAR = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE}
_REFUSED_TYPES = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.GNUTYPE_SPARSE: "a GNU sparse file",
    b"V": "a volume label",
    b"M": "a multi-volume continuation",
}


def _show(name: str) -> str:
    """A member name fit for an error line (non-UTF-8 bytes and control characters escaped)."""
    return repr(name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def normalise(raw: str, limits: StagingLimits, *, what: str = "member") -> str:
    """`./a//b/` -> `a/b`; refuses absolute paths, `..`, non-UTF-8 and over-long names."""
    shown = _show(raw)
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} {shown}: name is not valid UTF-8") from None
    if "\x00" in raw:
        raise InputError(f"{what} {shown}: name contains a NUL byte")
    if len(encoded) > limits.max_path_bytes:
        raise InputError(
            f"{what} {shown[:60]}...: name is {len(encoded)} bytes, "
            f"over the limit of {limits.max_path_bytes}"
        )
    if raw.startswith("/"):
        raise InputError(f"{what} {shown}: absolute path")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    for part in parts:
        if part == "..":
            raise InputError(f"{what} {shown}: '..' in path (escapes the archive)")
        if len(part.encode("utf-8")) > limits.max_component_bytes:
            raise InputError(
                f"{what} {shown}: a path component is over the limit of "
                f"{limits.max_component_bytes} bytes"
            )
    return "/".join(parts)


class TreeChecker:
    """Whole-archive rules: duplicates, case clashes, file/directory conflicts, links."""

    def __init__(self, limits: StagingLimits) -> None:
        self.limits = limits
        self.kinds: dict[str, Kind] = {}
        """Every path in the tree, explicit members and implied parent directories."""
        self.explicit: set[str] = set()
        self.folded: dict[str, str] = {}
        self.symlinks: dict[str, str] = {}

    def add(self, member: Member) -> None:
        name = member.name
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            kind = self.kinds.get(parent)
            if kind is None:
                self._claim_case(parent, member)
                self.kinds[parent] = Kind.DIR
            elif kind is not Kind.DIR:
                raise InputError(
                    f"member {_show(name)}: inside {_show(parent)}, which is a {kind.value}"
                )
        if name in self.explicit:
            raise InputError(f"member {_show(name)}: duplicate (the archive holds it twice)")
        existing = self.kinds.get(name)
        if existing is Kind.DIR and member.kind is not Kind.DIR:
            raise InputError(
                f"member {_show(name)}: a {member.kind.value} where earlier members "
                "need a directory"
            )
        if existing is None:
            self._claim_case(name, member)
        if member.kind is Kind.HARDLINK:
            target = member.target or ""
            if target not in self.explicit or self.kinds[target] not in (Kind.FILE, Kind.HARDLINK):
                raise InputError(
                    f"member {_show(name)}: hard link to {_show(target)}, "
                    "which is not an earlier file of the archive"
                )
        self.kinds[name] = member.kind
        self.explicit.add(name)
        if member.kind is Kind.SYMLINK:
            self.symlinks[name] = member.target or ""

    def _claim_case(self, path: str, member: Member) -> None:
        folded = path.casefold()
        other = self.folded.get(folded)
        if other is not None and other != path:
            raise InputError(
                f"member {_show(member.name)}: {_show(path)} differs only in case from "
                f"{_show(other)} (a case clash)"
            )
        self.folded[folded] = path

    def finish(self) -> None:
        """Resolve every symlink now that the whole listing is known."""
        for name in self.symlinks:
            self._resolve(name)

    def _resolve(self, name: str) -> None:
        target = self.symlinks[name]
        head = f"symlink {_show(name)} -> {_show(target)}"
        if not target:
            raise InputError(f"{head}: empty target")
        if target.startswith("/"):
            raise InputError(f"{head}: absolute target (leads outside the archive)")
        if len(target.encode("utf-8", "surrogateescape")) > self.limits.max_path_bytes:
            raise InputError(f"{head}: target over {self.limits.max_path_bytes} bytes")
        hops = [0]

        def walk(link: str, seen: tuple[str, ...]) -> list[str]:
            """The path `link` resolves to, as components from the root."""
            hops[0] += 1
            if hops[0] > self.limits.max_link_depth or link in seen:
                raise InputError(f"{head}: symlink loop or chain over {self.limits.max_link_depth}")
            link_target = self.symlinks[link]
            if link_target.startswith("/"):
                raise InputError(
                    f"{head}: leads outside the archive (through absolute symlink "
                    f"{_show(link)} -> {_show(link_target)})"
                )
            path = link.split("/")[:-1]
            via = "" if link == name else f" (through symlink {_show(link)})"
            for part in link_target.split("/"):
                if part in ("", "."):
                    continue
                if part == "..":
                    if not path:
                        raise InputError(f"{head}: leads outside the archive{via}")
                    path.pop()
                    continue
                path.append(part)
                here = "/".join(path)
                if self.kinds.get(here) is Kind.SYMLINK:
                    path = walk(here, (*seen, link))
                    via = f" (through symlink {_show(here)})"
            return path

        walk(name, ())


class _State(Enum):
    HEADER = 1
    DATA = 2
    END = 3


class TarParser:
    """Feed it bytes of an uncompressed tar stream; it checks each member as its header ends.

    `on_member` gets each checked member, `on_data` the data of regular files in order.
    `close()` refuses a stream that stopped before its end-of-archive marker and then
    resolves links; only after it returns is the archive known good.
    """

    def __init__(
        self,
        limits: StagingLimits,
        on_member: Callable[[Member], None] | None = None,
        on_data: Callable[[memoryview], None] | None = None,
    ) -> None:
        self.limits = limits
        self.tree = TreeChecker(limits)
        self.members = 0
        self.offset = 0
        self._on_member = on_member
        self._on_data = on_data
        self._state = _State.HEADER
        self._buffer = bytearray()
        self._remaining = 0
        self._padding = 0
        self._collect: bytearray | None = None
        self._collecting: bytes = b""
        self._pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._last = ""
        self._position = 0
        """Offset in the uncompressed stream just past the header being handled."""

    def _where(self) -> str:
        return f"after member {_show(self._last)}" if self._last else "at the start"

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self.offset += len(view)
        while view:
            if self._state is _State.END:
                return  # anything after the end marker is ignored, as tar does
            if self._state is _State.DATA:
                view = self._feed_data(view)
                continue
            need = BLOCK - len(self._buffer)
            self._buffer += view[:need]
            view = view[need:]
            if len(self._buffer) == BLOCK:
                block = bytes(self._buffer)
                self._buffer.clear()
                self._position = self.offset - len(view)
                self._header(block)

    def _feed_data(self, view: memoryview) -> memoryview:
        if self._remaining:
            take = view[: self._remaining]
            self._remaining -= len(take)
            if self._collect is not None:
                self._collect += take
            elif self._on_data is not None:
                self._on_data(take)
            view = view[len(take) :]
            if self._remaining == 0 and self._collect is not None:
                self._extended(bytes(self._collect))
                self._collect = None
        skip = min(self._padding, len(view))
        self._padding -= skip
        view = view[skip:]
        if self._remaining == 0 and self._padding == 0:
            self._state = _State.HEADER
        return view

    def _header(self, block: bytes) -> None:
        if block.count(0) == BLOCK:
            if self.members == 0 and self._pax == {} and self._long_name is None:
                raise InputError("the archive is empty (no members before its end marker)")
            self._state = _State.END
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            if self.members == 0 and self._last == "":
                raise InputError(f"not a tar archive ({exc})") from None
            raise InputError(f"corrupt tar header {self._where()} ({exc})") from None
        kind = info.type
        size = info.size
        if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME) or (
            kind == tarfile.GNUTYPE_LONGLINK
        ):
            if size > self.limits.max_header_bytes:
                raise InputError(
                    f"an extended header {self._where()} is {size} bytes, over the "
                    f"limit of {self.limits.max_header_bytes}"
                )
            self._collect = bytearray()
            self._collecting = kind
            self._start_data(size)
            return
        self._member(info)

    def _start_data(self, size: int) -> None:
        self._remaining = size
        self._padding = -size % BLOCK
        if size == 0 and self._collect is not None:
            self._extended(b"")
            self._collect = None
        self._state = _State.DATA if size or self._padding else _State.HEADER

    def _extended(self, data: bytes) -> None:
        kind = self._collecting
        if kind == tarfile.GNUTYPE_LONGNAME:
            self._long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == tarfile.GNUTYPE_LONGLINK:
            self._long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == tarfile.XHDTYPE:
            self._pax.update(self._pax_records(data))
        # Global pax headers (git archive writes one with the commit id) change nothing we use.

    def _pax_records(self, data: bytes) -> dict[str, str]:
        records: dict[str, str] = {}
        pos = 0
        while pos < len(data):
            space = data.find(b" ", pos)
            try:
                length = int(data[pos:space])
            except ValueError:
                raise InputError(f"corrupt pax header {self._where()}") from None
            record = data[space + 1 : pos + length]
            if space < 0 or length <= 0 or not record.endswith(b"\n") or b"=" not in record:
                raise InputError(f"corrupt pax header {self._where()}")
            key, value = record[:-1].split(b"=", 1)
            records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
            pos += length
        return records

    def _member(self, info: tarfile.TarInfo) -> None:
        raw_name = self._pax.pop("path", None) or self._long_name or info.name
        raw_link = self._pax.pop("linkpath", None) or self._long_link or info.linkname
        size = info.size
        if "size" in self._pax:
            try:
                size = int(self._pax.pop("size"))
            except ValueError:
                raise InputError(f"member {_show(raw_name)}: corrupt pax size") from None
        self._pax.clear()
        self._long_name = self._long_link = None
        self.members += 1
        if self.members > self.limits.max_members:
            raise InputError(f"the archive has more than {self.limits.max_members} members")
        name = normalise(raw_name, self.limits)
        shown = _show(raw_name)
        self._last = name or raw_name
        kind = info.type
        if kind in _REFUSED_TYPES:
            raise InputError(f"member {shown}: {_REFUSED_TYPES[kind]} (not allowed)")
        if kind in _REGULAR:
            member_kind = Kind.FILE
        elif kind == tarfile.DIRTYPE:
            member_kind = Kind.DIR
        elif kind == tarfile.SYMTYPE:
            member_kind = Kind.SYMLINK
        elif kind == tarfile.LNKTYPE:
            member_kind = Kind.HARDLINK
        else:
            raise InputError(f"member {shown}: unknown tar member type {kind!r}")
        if member_kind is not Kind.FILE and size:
            raise InputError(f"member {shown}: a {member_kind.value} that carries data")
        if size > self.limits.max_member_bytes:
            raise InputError(
                f"member {shown}: {size} bytes, over the member limit of "
                f"{self.limits.max_member_bytes}"
            )
        if self._position + size > self.limits.max_total_bytes:
            raise InputError(
                f"member {shown}: the archive grows past the limit of "
                f"{self.limits.max_total_bytes} uncompressed bytes"
            )
        target: str | None = None
        if member_kind is Kind.SYMLINK:
            target = raw_link
            if "\x00" in target:
                raise InputError(f"symlink {shown}: target contains a NUL byte")
            try:
                target.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"symlink {shown}: target is not valid UTF-8") from None
        elif member_kind is Kind.HARDLINK:
            target = normalise(raw_link, self.limits, what=f"hard link {shown} to")
        if name == "":
            if member_kind is not Kind.DIR:
                raise InputError(f"member {shown}: the archive root must be a directory")
        else:
            member = Member(name, member_kind, size, info.mode & 0o7777, int(info.mtime), target)
            self.tree.add(member)
            if self._on_member is not None:
                self._on_member(member)
        self._start_data(size)

    def close(self) -> None:
        """The stream ended: refuse truncation, then resolve links."""
        if self._state is _State.DATA:
            raise InputError(
                f"truncated: the upload ends inside member {_show(self._last)} "
                f"({self._remaining} bytes missing)"
            )
        if self._buffer:
            raise InputError(f"truncated: the upload ends inside a tar header {self._where()}")
        if self._state is not _State.END:
            if self.members == 0:
                raise InputError("not a tar archive (no header found)")
            raise InputError(
                f"truncated: the upload ends {self._where()} without the end-of-archive marker"
            )
        if not self.tree.explicit:
            raise InputError("the archive is empty (it holds no files)")
        self.tree.finish()
