"""Parses pax extended headers strictly and audits every key: used, knowingly ignored, or refused.

A key is used (`path`, `linkpath`, `size`, `mtime`), or ignored because it only carries
metadata that unpacking never applies (owners, other times, xattrs, ACLs, file flags), or
refused. Everything not listed is refused: a key we do not understand could change what
the member means (GNU sparse maps, multi-volume offsets), and passing it through would
unpack something other than what the archive holds. Numbers are parsed by regular
expressions into checked ranges, never by `int()` (which takes signs, `_` and any Unicode
digit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .tarheader import MAX_ID, MAX_SIZE, HeaderError, check_time

USED = ("path", "linkpath", "size", "mtime")
UTF8_CHARSET = "ISO-IR 10646 2000 UTF-8"
_IGNORED = frozenset(
    {
        "atime",
        "ctime",
        "uid",
        "gid",
        "uname",
        "gname",
        "comment",
        "charset",
        "hdrcharset",
        "SCHILY.dev",
        "SCHILY.ino",
        "SCHILY.nlink",
        "SCHILY.fflags",
        "LIBARCHIVE.creationtime",
        "LIBARCHIVE.symlinktype",
    }
)
_IGNORED_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.", "SCHILY.acl.", "RHT.security.")
_REFUSED_PREFIXES = {
    "GNU.sparse.": "a sparse file (pax GNU.sparse.*), which is not supported: "
    "archive it without --sparse",
    "SCHILY.realsize": "part of a multi-volume archive, which is not supported",
    "SCHILY.offset": "part of a multi-volume archive, which is not supported",
}
_LENGTH = re.compile(rb"[0-9]{1,10} ")
_UNSIGNED = re.compile(r"[0-9]{1,19}")
_TIME = re.compile(r"(-?[0-9]{1,19})(?:\.([0-9]{1,30}))?")


class PaxError(ValueError):
    """A malformed or refused pax header; `name` is the member's path when it was given."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


@dataclass(slots=True)
class PaxFields:
    """What pending extended headers say about the next member (None: the header's own)."""

    path: str | None = None
    linkpath: str | None = None
    size: int | None = None
    mtime: int | None = None

    def merge(self, other: PaxFields) -> None:
        """A later extended header overrides an earlier one, key by key."""
        for key in USED:
            value = getattr(other, key)
            if value is not None:
                setattr(self, key, value)


def records(data: bytes) -> list[tuple[str, str]]:
    """The `LENGTH key=value\\n` records of an extended header's data, in order."""
    found: list[tuple[str, str]] = []
    pos = 0
    while pos < len(data):
        match = _LENGTH.match(data, pos)
        if match is None:
            raise PaxError(f"corrupt pax record at byte {pos} (no length)")
        length = int(match[0])
        end = pos + length
        if length <= len(match[0]) or end > len(data) or data[end - 1] != 0x0A:
            raise PaxError(f"corrupt pax record at byte {pos} (length {length})")
        key, equals, value = data[match.end() : end - 1].partition(b"=")
        if not equals or not key:
            raise PaxError(f"corrupt pax record at byte {pos} (no key=value)")
        try:
            key_text = key.decode("utf-8")
        except UnicodeDecodeError:
            raise PaxError(f"pax key {key[:40]!r} is not valid UTF-8") from None
        found.append((key_text, value.decode("utf-8", "surrogateescape")))
        assert end > pos, "a pax record must consume bytes"
        pos = end
    return found


def audit(data: bytes, *, is_global: bool) -> PaxFields:
    """The used fields of one extended header; PaxError for anything malformed or refused."""
    pairs = records(data)
    named = dict(pairs).get("path") or dict(pairs).get("GNU.sparse.name")
    fields = PaxFields()
    for key, value in pairs:
        try:
            _one(fields, key, value, is_global=is_global)
        except PaxError as exc:
            raise PaxError(str(exc), named) from None
    return fields


def _one(fields: PaxFields, key: str, value: str, *, is_global: bool) -> None:
    for prefix, why in _REFUSED_PREFIXES.items():
        if key.startswith(prefix):
            raise PaxError(why)
    if key in USED:
        if is_global:
            raise PaxError(f"a global pax header sets {key!r} for every member (not supported)")
        if value == "":
            return  # an empty value restores the header's own field (POSIX)
        if key == "size":
            fields.size = _unsigned(value, key, MAX_SIZE)
        elif key == "mtime":
            try:
                fields.mtime = check_time(_time(value, key), "pax mtime")
            except HeaderError as exc:
                raise PaxError(str(exc)) from None
        else:
            setattr(fields, key, value)
        return
    if key in ("uid", "gid", "SCHILY.dev", "SCHILY.ino", "SCHILY.nlink"):
        _unsigned(value, key, MAX_SIZE if key.startswith("SCHILY") else MAX_ID)
    elif key in ("atime", "ctime", "LIBARCHIVE.creationtime"):
        _time(value, key)
    elif key == "hdrcharset" and value != UTF8_CHARSET:
        raise PaxError(f"pax hdrcharset {value[:40]!r} (names must be UTF-8)")
    elif key not in _IGNORED and not key.startswith(_IGNORED_PREFIXES):
        raise PaxError(f"pax key {key[:60]!r} is not supported")


def _unsigned(value: str, key: str, high: int) -> int:
    if not _UNSIGNED.fullmatch(value) or int(value) > high:
        raise PaxError(f"pax {key} {value[:40]!r} is not a number from 0 to {high}")
    return int(value)


def _time(value: str, key: str) -> int:
    """Whole seconds of a pax time (`-12.5` is 13 seconds before 1970, rounded down)."""
    match = _TIME.fullmatch(value)
    if match is None:
        raise PaxError(f"pax {key} {value[:40]!r} is not a time")
    seconds = int(match[1])
    if match[1].startswith("-") and (match[2] or "").strip("0"):
        seconds -= 1
    return seconds
