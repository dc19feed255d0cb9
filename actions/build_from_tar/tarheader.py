"""Decodes one 512-byte tar header block: every numeric field parsed into a checked range.

Octal fields are digits 0-7 between optional spaces and a NUL (no sign, no `_`, no
Unicode digits, unlike `int(s, 8)`); base-256 fields (GNU's high-bit form) are positive
only, except times, which may be before 1970. The checksum is verified, and the ustar
`prefix` is applied only under the POSIX `ustar\\0` magic: in the GNU format those bytes
hold other fields. Anything outside its range raises HeaderError, which the parser turns
into an InputError naming the member.
"""

from __future__ import annotations

from dataclasses import dataclass

BLOCK = 512

POSIX_MAGIC = b"ustar\x0000"
GNU_MAGIC = b"ustar  \x00"
V7_MAGIC = bytes(8)
_POSIX_VARIANTS = {b"ustar\x00\x00\x00": POSIX_MAGIC, b"ustar\x00 \x00": POSIX_MAGIC}
"""POSIX magic with the version left empty or blank, as some old writers did."""
_MAGICS = (POSIX_MAGIC, GNU_MAGIC, V7_MAGIC)

MAX_SIZE = (1 << 63) - 1
MAX_MODE = 0o7777777
MAX_ID = (1 << 32) - 1
MIN_TIME = -(1 << 31)
"""The earliest time unpacking sets (1901, as ext4 and a 32-bit time_t)."""
MAX_TIME = (1 << 33) - 1
"""The latest (2242): the largest 11-digit octal mtime, well inside what os.utime takes."""


class HeaderError(ValueError):
    """A header block that is not a valid tar header, or a field out of its range.

    `name` is the member's name when the block got as far as naming it."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True, slots=True)
class Header:
    """The fields of one header block the parser uses, each already range-checked."""

    name: str
    linkname: str
    mode: int
    size: int
    mtime: int
    typeflag: bytes


def _octal(field: bytes, what: str) -> int:
    digits = field.split(b"\x00", 1)[0].strip(b" ")
    if not digits:
        return 0
    if digits.strip(b"01234567"):
        raise HeaderError(f"bad {what} field {_shown(field)}")
    return int(digits, 8)


def _number(field: bytes, what: str, *, signed: bool = False) -> int:
    """An octal or base-256 field; negative only when `signed` (times)."""
    lead = field[0]
    if lead == 0x80:
        return int.from_bytes(field[1:], "big")
    if lead == 0xFF:
        if not signed:
            raise HeaderError(f"negative {what}")
        return int.from_bytes(field, "big", signed=True)
    if lead & 0x80:
        raise HeaderError(f"bad {what} field {_shown(field)}")
    return _octal(field, what)


def _ranged(value: int, low: int, high: int, what: str) -> int:
    if not low <= value <= high:
        raise HeaderError(f"{what} {value} is out of range ({low} to {high})")
    return value


def _shown(field: bytes) -> str:
    return repr(field.rstrip(b"\x00"))[:40]


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
}


def compression_of(head: bytes) -> str | None:
    """The compressed format `head` starts with, unless it is a valid tar header (a plain tar
    whose first name starts with `BZh` or `PK\\3\\4` is still a tar)."""
    if is_tar_header(head[:BLOCK]):
        return None
    return next((name for magic, name in COMPRESSED_MAGIC.items() if head.startswith(magic)), None)


def checksum_ok(block: bytes) -> bool:
    """The stored checksum matches the block's unsigned (or, as old tars wrote, signed) sum."""
    try:
        stored = _octal(block[148:156], "checksum")
    except HeaderError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored == unsigned:
        return True
    signed = unsigned - 256 * sum(1 for byte in (*block[:148], *block[156:]) if byte & 0x80)
    return stored == signed


def _magic(block: bytes) -> bytes:
    magic = block[257:265]
    return _POSIX_VARIANTS.get(magic, magic)


def is_tar_header(block: bytes) -> bool:
    """A whole block with a valid checksum and a known magic: the start of a tar archive."""
    return len(block) == BLOCK and _magic(block) in _MAGICS and checksum_ok(block)


def decode(block: bytes) -> Header:
    """The checked fields of a header block; HeaderError when any is invalid."""
    magic = _magic(block)
    if not is_tar_header(block):
        found = compression_of(block)
        if found:
            raise HeaderError(f"{found} data")
        if magic not in _MAGICS:
            raise HeaderError(f"unknown magic {_shown(magic)}")
        raise HeaderError("bad checksum")
    name = _text(block[0:100])
    if magic == POSIX_MAGIC and block[345]:
        name = f"{_text(block[345:500])}/{name}"
    try:
        return _fields(block, magic, name)
    except HeaderError as exc:
        raise HeaderError(str(exc), name) from None


def _fields(block: bytes, magic: bytes, name: str) -> Header:
    _ranged(_number(block[108:116], "uid"), 0, MAX_ID, "uid")
    _ranged(_number(block[116:124], "gid"), 0, MAX_ID, "gid")
    if magic != V7_MAGIC:
        _number(block[329:337], "device major")
        _number(block[337:345], "device minor")
    if magic == GNU_MAGIC:
        _number(block[345:357], "atime", signed=True)
        _number(block[357:369], "ctime", signed=True)
    typeflag = block[156:157]
    if typeflag == b"\x00" and name.endswith("/"):
        typeflag = b"5"  # a pre-POSIX directory: a regular-file type and a trailing slash
    return Header(
        name=name,
        linkname=_text(block[157:257]),
        mode=_ranged(_number(block[100:108], "mode"), 0, MAX_MODE, "mode"),
        size=_ranged(_number(block[124:136], "size"), 0, MAX_SIZE, "size"),
        mtime=check_time(_number(block[136:148], "mtime", signed=True), "mtime"),
        typeflag=typeflag,
    )


def check_time(value: int, what: str) -> int:
    """A time unpacking can set (os.utime overflows past 2262; filesystems stop sooner)."""
    if not MIN_TIME <= value <= MAX_TIME:
        raise HeaderError(f"{what} {value} is outside the years 1901 to 2242")
    return value
