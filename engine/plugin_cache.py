"""Every installed entry point, remembered per environment between processes.

Finding them reads the metadata of every installed distribution; a command that needs one
plugin should not pay for that on every start. The scan is kept in a small JSON file in
the user's cache directory, one per environment (interpreter and `sys.path`), with the
fingerprint of what was installed when it was made: for each folder on `sys.path`, its
modification time and the name and times of each `*.dist-info` / `*.egg-info` in it
(and of its `entry_points.txt`). Installing, upgrading or uninstalling a distribution
changes that fingerprint, and the next process scans again.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
"""Bumped when the file's layout changes: an old file is then ignored."""

_METADATA_DIRS = (".dist-info", ".egg-info")


@dataclass(frozen=True, slots=True)
class FoundEntryPoint:
    """One installed entry point and the distribution that declares it."""

    group: str
    name: str
    value: str
    distribution: str | None
    version: str | None

    def load(self) -> Any:
        """What the entry point names (imports its module), as `EntryPoint.load` finds it,
        without importing `importlib.metadata` (and email, zipfile, csv) on a cache hit."""
        found = _VALUE.match(self.value)
        if found is None:  # not `module:attr`: importlib.metadata says what is wrong
            import importlib.metadata as metadata

            return metadata.EntryPoint(self.name, self.value, self.group).load()
        obj = importlib.import_module(found["module"])
        for attribute in filter(None, (found["attr"] or "").split(".")):
            obj = getattr(obj, attribute)
        return obj


_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
"""`importlib.metadata.EntryPoint.pattern`: `module`, `module:attr.sub`, `module:attr [x]`."""


def installed_entry_points(cache_dir: Path | None = None) -> tuple[FoundEntryPoint, ...]:
    """Every entry point of every installed distribution, from the cache when nothing was
    installed or removed since it was written (`cache_dir` default: the user's)."""
    key = fingerprint()
    path = cache_file("entry-points", cache_dir)
    cached = _read(path, key)
    if cached is not None:
        return cached
    found = scan()
    _write(path, key, found)
    return found


def default_cache_dir() -> Path:
    from .user_dirs import user_cache_dir

    return user_cache_dir()


def scan() -> tuple[FoundEntryPoint, ...]:
    """Every entry point, read from the installed distributions' metadata now."""
    import importlib.metadata as metadata

    found = []
    everything = metadata.entry_points()  # a dict of groups before Python 3.12
    for entry_point in (ep for g in everything.groups for ep in everything.select(group=g)):
        dist = entry_point.dist
        found.append(
            FoundEntryPoint(
                entry_point.group,
                entry_point.name,
                entry_point.value,
                dist.name if dist is not None else None,
                dist.version if dist is not None else None,
            )
        )
    return tuple(found)


def fingerprint() -> list[Any]:
    """What is installed where, as cheaply as it can be told: a few `stat` calls per
    distribution, no file read."""
    folders: list[Any] = []
    for entry in sys.path:
        folder = entry or os.getcwd()
        try:
            mtime = os.stat(folder).st_mtime_ns
            with os.scandir(folder) as listing:
                dists = sorted(
                    [item.name, item.stat().st_mtime_ns, _mtime(item.path, "entry_points.txt")]
                    for item in listing
                    if item.name.endswith(_METADATA_DIRS) and item.is_dir()
                )
        except OSError:  # a zip file, a folder that does not exist (yet)
            folders.append([entry, None, []])
            continue
        folders.append([entry, mtime, dists])
    return [FORMAT, sys.executable, sys.version, folders]


def _mtime(folder: str, name: str) -> int | None:
    try:
        return os.stat(os.path.join(folder, name)).st_mtime_ns
    except OSError:
        return None


def _environment_id() -> str:
    """One cache file per interpreter and path, so that environments do not evict each
    other's."""
    # A checksum, not hashlib: OpenSSL's loading costs every command more than the rest of
    # this module. A clash of two environments' names only costs rescans (the key differs).
    text = json.dumps([sys.executable, sys.path])
    return f"{zlib.crc32(text.encode()):08x}"


def _read(path: Path, key: list[Any]) -> tuple[FoundEntryPoint, ...] | None:
    rows = read_cached(path, key, "entry_points")
    try:
        return None if rows is None else tuple(FoundEntryPoint(*row) for row in rows)
    except TypeError:  # a foreign layout: rescan
        return None


def _write(path: Path, key: list[Any], found: tuple[FoundEntryPoint, ...]) -> None:
    rows = [[e.group, e.name, e.value, e.distribution, e.version] for e in found]
    write_cached(path, key, "entry_points", rows)


def cache_file(kind: str, cache_dir: Path | None = None) -> Path:
    """This environment's cache file for `kind` (`entry-points`, `actions`)."""
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    return folder / f"{kind}-{_environment_id()}.json"


def read_cached(path: Path, key: Any, field: str) -> Any:
    """`field` of the cache file at `path` if it was written under `key`, else None."""
    try:
        data = json.loads(path.read_bytes())
        return data[field] if data["key"] == key else None
    except (OSError, ValueError, KeyError, TypeError):  # missing, torn or foreign: rescan
        return None


def write_cached(path: Path, key: Any, field: str, value: Any) -> None:
    """Atomically (another process may read it meanwhile); a cache that cannot be written
    only costs the next process a scan."""
    import tempfile  # with shutil, bz2, lzma and random: only when the cache is written

    try:
        text = json.dumps({"key": key, field: value})
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.stem}-", delete=False
        ) as out:
            out.write(text)
        os.replace(out.name, path)
    except (OSError, TypeError, ValueError):  # unwritable, or a value JSON cannot hold
        return
