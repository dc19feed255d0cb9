"""Push parser for tar streams that checks every member as it arrives (names, types, links, caps).

One parser serves both staging (check while the upload streams in) and extraction (the same
parser walks the staged file), so what was checked is exactly what is unpacked: no second tar
reader with its own reading of the format. Header blocks are decoded by `tarheader` (every
number range-checked) and pax headers by `tarpax` (every key audited); sequencing, GNU long
names, data skipping and the rules are here. Every step of `feed` consumes bytes or ends the
archive, and a step that does neither raises: no input can make the parser spin.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from sagactl.engine import InputError

from .tarheader import BLOCK, Header, HeaderError, compression_of, decode, is_tar_header
from .tarmodel import PATH_MAX, GiB, Kind, Member, MiB, StagingLimits
from .tarmodel import show as _show
from .tarpax import PaxError, PaxFields, audit
from .tartree import TreeChecker, normalise

_KINDS = {
    b"0": Kind.FILE,
    b"\x00": Kind.FILE,
    b"7": Kind.FILE,  # contiguous file: a regular file everywhere but on old Masscomp
    b"1": Kind.HARDLINK,
    b"2": Kind.SYMLINK,
    b"5": Kind.DIR,
}
_EXTENDED = (b"x", b"g", b"L", b"K")
"""pax header, global pax header, GNU long name, GNU long link target."""
_REFUSED_TYPES = {
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a FIFO",
    b"S": "a GNU sparse file",
    b"V": "a volume label",
    b"M": "a multi-volume continuation",
    b"N": "an old GNU long-name record",
    b"D": "a GNU incremental directory dump",
    b"X": "a Solaris extended header",
}


class ParserStuck(AssertionError):
    """A parser step consumed no bytes without ending: a bug, never an input's fault."""


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
        self._file_caps = dict(limits.file_caps)
        self._listing = 0
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
        self._pending = PaxFields()
        self._pending_bytes = 0
        """Data of the extended headers waiting for their member (capped as one header)."""
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._headers = 0
        self._unnamed: str | None = None
        """A refused pax header that did not name its member: raised at the member's header."""
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
            before = len(view)
            if self._state is _State.DATA:
                view = self._feed_data(view)
            else:
                need = BLOCK - len(self._buffer)
                self._buffer += view[:need]
                view = view[need:]
                if len(self._buffer) == BLOCK:
                    block = bytes(self._buffer)
                    self._buffer.clear()
                    self._position = self.offset - len(view)
                    self._header(block)
            if len(view) >= before:
                raise ParserStuck(f"tar parser made no progress at byte {self.offset - before}")

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
        if self._unnamed is not None:
            try:
                name: str | None = decode(block).name
            except HeaderError as exc:
                name = exc.name
            if name:
                raise InputError(f"member {_show(name)}: {self._unnamed}")
            raise InputError(f"pax header {self._where()}: {self._unnamed}")
        if block.count(0) == BLOCK:
            if self._headers == 0:
                raise InputError("the archive is empty (no members before its end marker)")
            if self._pending_bytes or self._long_name is not None or self._long_link is not None:
                raise InputError(f"an extended header {self._where()} has no member after it")
            self._state = _State.END
            return
        try:
            header = decode(block)
        except HeaderError as exc:
            if exc.name:
                raise InputError(f"member {_show(exc.name)}: {exc}") from None
            if self._headers == 0:
                raise InputError(f"not a tar archive ({exc})") from None
            raise InputError(f"corrupt tar header {self._where()} ({exc})") from None
        self._headers += 1
        if header.typeflag in _EXTENDED:
            self._pending_bytes += header.size
            if self._pending_bytes > self.limits.max_header_bytes:
                raise InputError(
                    f"extended headers {self._where()} hold {self._pending_bytes} bytes, "
                    f"over the limit of {self.limits.max_header_bytes}"
                )
            self._collect = bytearray()
            self._collecting = header.typeflag
            self._start_data(header.size)
            return
        self._member(header)

    def _start_data(self, size: int) -> None:
        if size < 0:
            raise ParserStuck(f"negative data size {size} reached the parser")
        self._remaining = size
        self._padding = -size % BLOCK
        if size == 0 and self._collect is not None:
            self._extended(b"")
            self._collect = None
        self._state = _State.DATA if size or self._padding else _State.HEADER

    def _extended(self, data: bytes) -> None:
        kind = self._collecting
        if kind == b"L":
            self._long_name = _gnu_text(data)
        elif kind == b"K":
            self._long_link = _gnu_text(data)
        else:
            try:
                fields = audit(data, is_global=kind == b"g")
            except PaxError as exc:
                if exc.name is not None:
                    raise InputError(f"member {_show(exc.name)}: {exc}") from None
                self._unnamed = str(exc)  # raised with the name in the member's own header
                return
            self._pending.merge(fields)

    def _member(self, header: Header) -> None:
        pending = self._pending
        raw_name = pending.path or self._long_name or header.name
        raw_link = pending.linkpath or self._long_link or header.linkname
        size = header.size if pending.size is None else pending.size
        mtime = header.mtime if pending.mtime is None else pending.mtime
        self._pending = PaxFields()
        self._pending_bytes = 0
        self._long_name = self._long_link = None
        self.members += 1
        if self.members > self.limits.max_members:
            raise InputError(f"the archive has more than {self.limits.max_members} members")
        shown = _show(raw_name)
        kind = header.typeflag
        if kind in _REFUSED_TYPES:
            raise InputError(f"member {shown}: {_REFUSED_TYPES[kind]} (not allowed)")
        member_kind = _KINDS.get(kind)
        if member_kind is None:
            raise InputError(f"member {shown}: unknown tar member type {kind!r}")
        name = normalise(raw_name, self.limits)
        self._last = name or raw_name
        if member_kind is not Kind.FILE and size:
            raise InputError(f"member {shown}: a {member_kind.value} that carries data")
        if size > self.limits.max_member_bytes:
            raise InputError(
                f"member {shown}: {size} bytes, over the member limit of "
                f"{self.limits.max_member_bytes}"
            )
        cap = self._file_caps.get(name)
        if cap is not None and member_kind is Kind.FILE and size > cap:
            raise InputError(f"member {shown}: {size} bytes, over the limit of {cap} for it")
        if self._position + size > self.limits.max_total_bytes:
            raise InputError(
                f"member {shown}: the archive grows past the limit of "
                f"{self.limits.max_total_bytes} uncompressed bytes"
            )
        target: str | None = None
        if member_kind is Kind.SYMLINK:
            target = raw_link
            longest = min(self.limits.max_path_bytes, PATH_MAX - 1)
            if len(target.encode("utf-8", "surrogateescape")) > longest:
                raise InputError(f"symlink {shown}: target over {longest} bytes")
            if "\x00" in target:
                raise InputError(f"symlink {shown}: target contains a NUL byte")
            try:
                target.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"symlink {shown}: target is not valid UTF-8") from None
        elif member_kind is Kind.HARDLINK:
            target = normalise(raw_link, self.limits, what=f"hard link {shown} to")
        self._listing += len(name) + len(target or "")
        if self._listing > self.limits.max_listing_bytes:
            raise InputError(
                f"member {shown}: the names and link targets of the archive pass the limit "
                f"of {self.limits.max_listing_bytes} bytes"
            )
        if name == "":
            if member_kind is not Kind.DIR:
                raise InputError(f"member {shown}: the archive root must be a directory")
        else:
            member = Member(name, member_kind, size, header.mode & 0o7777, mtime, target)
            self.tree.add(member)
            if self._on_member is not None:
                self._on_member(member)
        self._start_data(size)

    def close(self) -> None:
        """The stream ended: refuse truncation, then resolve links."""
        if self._unnamed is not None:
            raise InputError(f"pax header {self._where()}: {self._unnamed}")
        if self._headers == 0 and self._state is not _State.END:
            found = compression_of(bytes(self._buffer))
            if found:
                raise InputError(f"not a tar archive ({found} data)")
            raise InputError(
                "not a tar archive (it ends before its first header)"
                if self._buffer
                else "not a tar archive (no header found)"
            )
        if self._state is _State.DATA:
            raise InputError(
                f"truncated: the upload ends inside member {_show(self._last)} "
                f"({self._remaining + self._padding} bytes missing)"
            )
        if self._buffer:
            raise InputError(f"truncated: the upload ends inside a tar header {self._where()}")
        if self._state is not _State.END:
            raise InputError(
                f"truncated: the upload ends {self._where()} without the end-of-archive marker"
            )
        if not self.tree.explicit:
            raise InputError("the archive is empty (it holds no files)")
        self.tree.finish()


def _gnu_text(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


__all__ = [
    "BLOCK",
    "GiB",
    "Kind",
    "Member",
    "MiB",
    "ParserStuck",
    "StagingLimits",
    "TarParser",
    "is_tar_header",
]
