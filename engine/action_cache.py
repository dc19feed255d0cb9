"""What the installed actions declare, remembered between processes with the entry points.

`sagactl validate`, `schema` and `graph` need each action's description (its schemas,
whether it compensates), not its code: importing every plugin, and checking its schemas
with jsonschema, costs more than the check itself. The descriptions are kept next to the
entry-point cache (`plugin_cache`), under the same fingerprint of the installed
distributions plus the modification time of every source file loaded from outside the
installed trees when they were written: editing a plugin of an editable install, or a
module on `sys.path`, is seen at once. Only a complete set is kept: while a plugin fails
to load, every process loads them all again, and reports it where it did before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .action import ActionCatalog, ActionInfo
from .plugin_cache import cache_file, fingerprint, read_cached, write_cached

FORMAT = 1
"""Bumped when the file's layout changes: an old file is then ignored."""


class DescribedActions:
    """The installed actions as described when the cache was written (an `ActionCatalog`)."""

    def __init__(self, infos: Sequence[ActionInfo]) -> None:
        self._infos = {info.name: info for info in sorted(infos, key=lambda i: i.name)}

    def info(self, name: str) -> ActionInfo | None:
        return self._infos.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._infos)

    def infos(self) -> tuple[ActionInfo, ...]:
        """Every usable action, sorted by name."""
        return tuple(self._infos.values())


def action_catalog(cache_dir: Path | None = None) -> ActionCatalog:
    """The installed actions' descriptions: from the cache when nothing changed since it
    was written, else from the loaded plugins (`load_plugins().actions`, which then
    writes it when every action loaded)."""
    path = cache_file("actions", cache_dir)
    key = [FORMAT, fingerprint()]
    cached = read_cached(path, key, "actions")
    if cached is not None:
        infos = _infos(cached)
        if infos is not None:
            return DescribedActions(infos)
    from .plugins import load_plugins

    actions = load_plugins().actions
    if not actions.errors:
        rows = [info.to_json() for info in actions.infos()]
        write_cached(path, key, "actions", {"sources": _sources(), "infos": rows})
    return actions


def _infos(cached: Any) -> list[ActionInfo] | None:
    """The cached descriptions, or None when a source file changed (or the layout is not
    ours)."""
    try:
        for file, mtime in cached["sources"]:
            if _mtime(file) != mtime:
                return None
        return [ActionInfo(**row) for row in cached["infos"]]
    except (KeyError, TypeError, ValueError):
        return None


def _sources() -> list[list[Any]]:
    """Every loaded module's file that an install does not own (an editable install's,
    a folder on `sys.path`), with its modification time: the descriptions came from some
    of them, and the fingerprint does not see them change."""
    import sysconfig

    paths = sysconfig.get_paths()
    installed = tuple(
        os.path.join(paths[name], "") for name in ("stdlib", "platstdlib", "purelib", "platlib")
    )
    files = {
        file
        for module in list(sys.modules.values())
        if isinstance(file := getattr(module, "__file__", None), str)
        and not file.startswith(installed)
    }
    return [[file, _mtime(file)] for file in sorted(files)]


def _mtime(file: str) -> int | None:
    try:
        return os.stat(file).st_mtime_ns
    except OSError:
        return None
