"""Whether an upload's config will pass, judged from its staging pass, before it is unpacked.

load_config, detect_stack and parse_services read a few files of the unpacked tree. The
staging pass keeps those files' bytes (they are small and capped) and the parser knows the
kind of every path, so the same three checks can run on a scratch copy of just those files
(the stack markers as empty files) while the upload is still only staged. This lets a
server answer an upload once its bytes are written once, and unpack it afterwards.

A prediction only ever says "sound" when it is sure: when one of the files the checks read
is a link or a directory, or sits under a link, it says "unsure" and the caller waits for
the real checks. A wrong "sound" would only answer 202 for a build that then fails.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from sagactl.engine import InputError

from . import appconfig, procfile, stack
from .tarmodel import Kind, Member

PROCFILE = "Procfile"
CAPTURED = (PROCFILE, *appconfig.PLACES)
"""The files whose bytes the checks read (the stack markers only need to exist)."""
MARKERS = tuple(name for _, names in stack.RULES for name in names)


class FileCapture:
    """The `on_member`/`on_data` pair of a staging pipeline: the kind of every member, and
    the bytes of the CAPTURED regular files as they stream by (the parser caps their size)."""

    def __init__(self) -> None:
        self.kinds: dict[str, Kind] = {}
        self.files: dict[str, bytearray] = {}
        self._into: bytearray | None = None

    def member(self, member: Member) -> None:
        self.kinds[member.name] = member.kind
        self._into = None  # the data that follows is this member's, if any
        if member.kind is Kind.FILE and member.name in CAPTURED:
            self._into = self.files.setdefault(member.name, bytearray())

    def data(self, chunk: memoryview) -> None:
        if self._into is not None:
            self._into += chunk

    def config_is_sound(self, scratch: Path) -> bool:
        return config_is_sound(self.kinds, self.files, scratch)


def config_is_sound(
    kinds: Mapping[str, Kind], files: Mapping[str, bytes | bytearray], scratch: Path
) -> bool:
    """True when load_config, detect_stack and parse_services will succeed on the unpacked
    upload whose paths have `kinds` (the parser's tree) and whose CAPTURED files hold
    `files`; False when one of them fails or the answer is not certain. `scratch` is a
    directory for a throwaway copy of those files."""
    if not all(_plain(kinds, name) for name in (*CAPTURED, *MARKERS)):
        return False
    preview = Path(tempfile.mkdtemp(prefix=".precheck-", dir=scratch))
    try:
        for name, data in files.items():
            _put(preview, name, bytes(data))
        for name in MARKERS:
            if kinds.get(name) is Kind.FILE:
                _put(preview, name, b"")
        config = appconfig.load(preview)
        named = (config.get("build") or {}).get("dockerfile")
        if named:
            name = posixpath.normpath(str(named))
            if name.startswith(("../", "/")) or name == ".." or not _plain(kinds, name):
                return False
            if kinds.get(name) is Kind.FILE and name not in files:
                _put(preview, name, b"")
        stack.detect(preview, config)
        procfile.declared(preview, config)
    except InputError:
        return False  # the real check fails the same way, with its own words
    finally:
        shutil.rmtree(preview, ignore_errors=True)
    return True


def _plain(kinds: Mapping[str, Kind], name: str) -> bool:
    """`name` is a regular file or absent, under directories (or nothing) only."""
    parts = name.split("/")
    parents = ("/".join(parts[:depth]) for depth in range(1, len(parts)))
    if any(kinds.get(parent, Kind.DIR) is not Kind.DIR for parent in parents):
        return False
    return kinds.get(name, Kind.FILE) is Kind.FILE


def _put(root: Path, name: str, data: bytes) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
