"""Where plugins are found: every entry-point group, scanned once, loaded on first use.

The engine's own groups are declared here: `sagactl.actions`, `sagactl.definitions`,
`sagactl.commands`, and `sagactl.groups`, in which a package names the `Group` objects it
declares for its own plugins, so that their errors are reported with everyone else's (the
store declares `sagactl.migrations` that way). `load_plugins().registry(GROUP)` gives the
typed `Registry` of any group. A plugin that fails to load and a name claimed by two
distributions each give one `PluginError` naming the distribution(s); everything else
still loads.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, cast

from .action_plugins import ACTIONS, ActionRegistry
from .deps import Dependencies
from .errors import PluginError
from .plugin_cache import FoundEntryPoint, installed_entry_points
from .plugin_registry import (
    Group,
    Plugin,
    Registry,
    as_is,
    describe_exception,
    origin,
    plugin_error,
)

T = TypeVar("T")


# -- the engine's groups -----------------------------------------------------------------


def _definition_folder(plugin: Plugin[object], deps: Dependencies | None) -> Path:
    """A `sagactl.definitions` entry point names a package, or a path (or a function giving
    one; relative paths are taken from the entry point's module)."""
    obj = plugin.obj
    if isinstance(obj, ModuleType):
        locations = list(getattr(obj, "__path__", []))
        if not locations:
            raise plugin_error(
                plugin, f"names the module {obj.__name__}, not a package of YAML files"
            )
        folder = Path(locations[0])
    else:
        if callable(obj):
            try:
                obj = obj()
            except Exception as exc:
                raise plugin_error(
                    plugin, f"failed to give its folder: {describe_exception(exc)}"
                ) from exc
        if not isinstance(obj, str | os.PathLike):
            raise plugin_error(plugin, f"gave a {type(obj).__name__}, not a folder")
        folder = Path(obj)
        if not folder.is_absolute():
            module = sys.modules.get(plugin.value.partition(":")[0].strip())
            base = getattr(module, "__file__", None)
            folder = Path(base).parent / folder if base else folder
    if not folder.is_dir():
        raise plugin_error(plugin, f"names {folder}, which is not a folder")
    return folder


def _group(plugin: Plugin[object], deps: Dependencies | None) -> Group[object]:
    if not isinstance(plugin.obj, Group):
        raise plugin_error(plugin, f"names a {type(plugin.obj).__name__}, not a Group")
    if plugin.obj.name != plugin.name:
        raise plugin_error(plugin, f"names the group {plugin.obj.name!r}, not {plugin.name!r}")
    if any(group.name == plugin.name for group in ENGINE_GROUPS):
        raise plugin_error(plugin, "declares a group of the engine's own")
    return cast(Group[object], plugin.obj)


DEFINITIONS: Group[Path] = Group("sagactl.definitions", "definition folder", _definition_folder)
COMMANDS: Group[object] = Group("sagactl.commands", "command", as_is)
"""Raw objects: a click command or a function returning one (the CLI checks which)."""
GROUPS: Group[Group[object]] = Group("sagactl.groups", "plugin group", _group)
"""Groups other packages declare, each entry point named after its group:
`"acme.widgets" = "acme.widgets:WIDGETS"`."""
ENGINE_GROUPS: tuple[Group[Any], ...] = (ACTIONS, DEFINITIONS, COMMANDS, GROUPS)
"""Found without importing anything else of ours; the store declares `sagactl.migrations`
in `sagactl.groups` like any package, because loading it needs the plugins."""


class DefinitionFolders(Registry[Path]):
    """Folders of YAML saga definitions that distributions ship."""

    def folders(self) -> tuple[Path, ...]:
        """Each folder once, in entry-point name order."""
        return tuple(dict.fromkeys(plugin.obj for plugin in self))


# -- loading -----------------------------------------------------------------------------


class Plugins:
    """What the installed distributions register, each group loaded on first use."""

    def __init__(self, entry_points: _EntryPoints, deps: Dependencies | None = None) -> None:
        self._entry_points = entry_points
        self._deps = deps
        self._registries: dict[str, Registry[Any]] = {}
        self._lock = threading.RLock()

    def registry(self, group: Group[T]) -> Registry[T]:
        """The plugins of `group`, loaded and checked once."""
        with self._lock:
            registry = self._registries.get(group.name)
            if registry is None:
                registry = self._registries[group.name] = self._load(group)
            return cast(Registry[T], registry)

    @cached_property
    def actions(self) -> ActionRegistry:
        return ActionRegistry.described(self.registry(ACTIONS), self._deps)

    @cached_property
    def definitions(self) -> DefinitionFolders:
        loaded = self.registry(DEFINITIONS)
        return DefinitionFolders(DEFINITIONS, {p.name: p for p in loaded}, loaded.errors)

    @property
    def commands(self) -> Registry[object]:
        return self.registry(COMMANDS)

    def groups(self) -> tuple[Group[Any], ...]:
        """The engine's groups, then those packages declare in `sagactl.groups`."""
        declared = self.registry(GROUPS)
        return (*ENGINE_GROUPS, *(plugin.obj for plugin in declared))

    @property
    def errors(self) -> list[PluginError]:
        """Every plugin problem of every group (loads them all), in group then name order."""
        registries: Iterable[Registry[Any]] = (
            self.actions if group is ACTIONS else self.registry(group) for group in self.groups()
        )
        return [error for registry in registries for error in registry.errors]

    def _load(self, group: Group[T]) -> Registry[T]:
        entry_points, errors = self._entry_points.select(group)
        plugins: dict[str, Plugin[T]] = {}
        for name, entry_point in entry_points.items():
            distribution, version = _distribution_of(entry_point)
            try:
                obj = entry_point.load()
            except Exception as exc:
                errors.append(
                    PluginError(
                        f"{group.kind} '{name}' from {origin(distribution, version)} failed "
                        f"to load ({entry_point.value}): {describe_exception(exc)}",
                        group=group.name,
                        name=name,
                        distribution=distribution,
                    )
                )
                continue
            loaded: Plugin[object] = Plugin(
                group.name, name, entry_point.value, distribution, version, obj
            )
            try:
                plugins[name] = loaded.holding(group.accept(loaded, self._deps))
            except PluginError as exc:
                errors.append(exc)
        return Registry(group, plugins, errors)


# -- discovery ---------------------------------------------------------------------------


class _EntryPoints:
    """Every installed entry point, found by one scan; a group's clashing names set apart."""

    def __init__(self, found: Iterable[FoundEntryPoint]) -> None:
        self._found = tuple(found)

    def select(self, group: Group[Any]) -> tuple[dict[str, FoundEntryPoint], list[PluginError]]:
        by_name: dict[str, list[FoundEntryPoint]] = {}
        for entry_point in self._found:
            if entry_point.group == group.name:
                by_name.setdefault(entry_point.name, []).append(entry_point)
        usable: dict[str, FoundEntryPoint] = {}
        clashes: list[PluginError] = []
        for name in sorted(by_name):
            claims = by_name[name]
            if len(claims) == 1:
                usable[name] = claims[0]
            else:
                clashes.append(_clash(group, name, claims))
        return usable, clashes


def _clash(group: Group[Any], name: str, claims: list[FoundEntryPoint]) -> PluginError:
    owners = sorted(
        (_distribution_of(ep)[0] or "an unnamed distribution", _distribution_of(ep)[1], ep.value)
        for ep in claims
    )
    listed = ", ".join(f"{origin(dist, version)} ({value})" for dist, version, value in owners)
    return PluginError(
        f"{group.kind} '{name}' is claimed by {len(owners)} distributions: {listed}; "
        "none of them is used until all but one are uninstalled",
        group=group.name,
        name=name,
        distribution=owners[0][0],
        distributions=tuple(dist for dist, _, _ in owners),
    )


def _distribution_of(entry_point: FoundEntryPoint) -> tuple[str | None, str | None]:
    return entry_point.distribution, entry_point.version


_lock = threading.Lock()
_scanned: _EntryPoints | None = None
_default: Plugins | None = None


def load_plugins(deps: Dependencies | None = None) -> Plugins:
    """The installed plugins. Scanning entry points is slow, so it happens once per process,
    and its result is cached on disk until a distribution is installed or removed.

    `deps` is only used to describe an action whose factory must be called to learn its
    schemas; without it such a factory gets an empty container. The result for
    `deps=None` is shared by the whole process.
    """
    global _scanned, _default
    with _lock:
        if _scanned is None:
            _scanned = _EntryPoints(installed_entry_points())
        if deps is not None:
            return Plugins(_scanned, deps)
        if _default is None:
            _default = Plugins(_scanned)
        return _default


def reset_plugins() -> None:
    """Forget what was scanned and loaded, for tests that install distributions at run time."""
    global _scanned, _default
    with _lock:
        _scanned = None
        _default = None
    importlib.invalidate_caches()
