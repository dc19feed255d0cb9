"""Entry-point plugins: the five sagactl groups discovered, loaded, checked and looked up by name.

Distributions (sagactl's own included) register in `sagactl.actions`, `sagactl.definitions`,
`sagactl.builders`, `sagactl.runtimes` and `sagactl.commands`. A plugin that fails to load
and a name claimed by two distributions each give one `PluginError` naming the
distribution(s); everything else still loads.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import inspect
import os
import sys
import threading
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

from .action import JSON, Action, ActionInfo
from .deps import Dependencies
from .errors import PluginError, SagaError
from .json_schema import schema_problems

ACTIONS = "sagactl.actions"
DEFINITIONS = "sagactl.definitions"
BUILDERS = "sagactl.builders"
RUNTIMES = "sagactl.runtimes"
COMMANDS = "sagactl.commands"
GROUPS = (ACTIONS, DEFINITIONS, BUILDERS, RUNTIMES, COMMANDS)

_KIND = {
    ACTIONS: "action",
    DEFINITIONS: "definition folder",
    BUILDERS: "builder",
    RUNTIMES: "runtime",
    COMMANDS: "command",
}


@dataclass(frozen=True, slots=True)
class Plugin:
    """One loaded entry point: where it came from and the object it names."""

    group: str
    name: str
    value: str
    """The entry point's target, `module:attribute`."""
    distribution: str | None
    version: str | None
    obj: Any

    @property
    def origin(self) -> str:
        """The distribution and version, for messages: `acme-saga-plugin 1.0.0`."""
        return _origin(self.distribution, self.version)


class Registry:
    """The plugins of one group by name; a name that failed to load keeps its error."""

    def __init__(
        self, group: str, plugins: Mapping[str, Plugin], errors: Sequence[PluginError]
    ) -> None:
        self.group = group
        self._plugins = {name: plugins[name] for name in sorted(plugins)}
        self._errors = tuple(sorted(errors, key=lambda e: e.name))
        self._error_by_name = {e.name: e for e in self._errors}

    @property
    def kind(self) -> str:
        return _KIND.get(self.group, "plugin")

    @property
    def errors(self) -> tuple[PluginError, ...]:
        return self._errors

    def names(self) -> tuple[str, ...]:
        return tuple(self._plugins)

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def __iter__(self) -> Iterator[Plugin]:
        return iter(self._plugins.values())

    def __len__(self) -> int:
        return len(self._plugins)

    def error_for(self, name: str) -> PluginError | None:
        """Why `name` is unusable when a distribution registered it but it did not load."""
        return self._error_by_name.get(name)

    def get(self, name: str) -> Plugin:
        """The plugin, or the `PluginError` saying why there is none."""
        plugin = self._plugins.get(name)
        if plugin is not None:
            return plugin
        error = self._error_by_name.get(name)
        if error is not None:
            raise error
        installed = ", ".join(self._plugins) or "none"
        raise PluginError(
            f"no {self.kind} named '{name}' is installed (installed: {installed})",
            group=self.group,
            name=name,
            distribution=None,
        )

    def create(self, name: str, deps: Dependencies) -> Any:
        """Calls the plugin's factory (or class) with the container."""
        plugin = self.get(name)
        try:
            return call_factory(plugin.obj, deps)
        except SagaError:
            raise
        except Exception as exc:
            raise plugin_error(plugin, f"could not be created: {describe_exception(exc)}") from exc


class ActionRegistry(Registry):
    """The installed actions: what the compiler checks definitions against, and their factories.

    Implements `ActionCatalog`.
    """

    def __init__(
        self,
        plugins: Mapping[str, Plugin],
        infos: Mapping[str, ActionInfo],
        errors: Sequence[PluginError],
    ) -> None:
        super().__init__(ACTIONS, plugins, errors)
        self._infos = {name: infos[name] for name in self.names()}

    def info(self, name: str) -> ActionInfo | None:
        return self._infos.get(name)

    def infos(self) -> tuple[ActionInfo, ...]:
        """Every usable action, sorted by name."""
        return tuple(self._infos.values())

    def create(self, name: str, deps: Dependencies) -> Action:
        action = super().create(name, deps)
        if not isinstance(action, Action):
            raise plugin_error(self.get(name), f"made a {type(action).__qualname__}, not an Action")
        return action


class DefinitionFolders(Registry):
    """Folders of YAML saga definitions that distributions ship."""

    def folders(self) -> tuple[Path, ...]:
        return tuple(plugin.obj for plugin in self)


class Plugins:
    """What the installed distributions register, each group loaded on first use."""

    def __init__(self, entry_points: _EntryPoints, deps: Dependencies | None = None) -> None:
        self._entry_points = entry_points
        self._deps = deps

    @cached_property
    def actions(self) -> ActionRegistry:
        plugins, errors = self._load(ACTIONS)
        usable: dict[str, Plugin] = {}
        infos: dict[str, ActionInfo] = {}
        for name, plugin in plugins.items():
            try:
                infos[name] = describe_action(plugin, self._deps)
            except PluginError as exc:
                errors.append(exc)
                continue
            usable[name] = plugin
        return ActionRegistry(usable, infos, errors)

    @cached_property
    def definitions(self) -> DefinitionFolders:
        plugins, errors = self._load(DEFINITIONS)
        folders: dict[str, Plugin] = {}
        for name, plugin in plugins.items():
            try:
                folder = _definition_folder(plugin)
            except PluginError as exc:
                errors.append(exc)
                continue
            folders[name] = Plugin(
                plugin.group, name, plugin.value, plugin.distribution, plugin.version, folder
            )
        return DefinitionFolders(DEFINITIONS, folders, errors)

    @cached_property
    def builders(self) -> Registry:
        return self._factories(BUILDERS)

    @cached_property
    def runtimes(self) -> Registry:
        return self._factories(RUNTIMES)

    @cached_property
    def commands(self) -> Registry:
        """Raw objects: a click command or a function returning one (the CLI checks which)."""
        plugins, errors = self._load(COMMANDS)
        return Registry(COMMANDS, plugins, errors)

    def registry(self, group: str) -> Registry:
        registry: Registry = getattr(self, group.removeprefix("sagactl."))
        return registry

    @property
    def errors(self) -> list[PluginError]:
        """Every plugin problem of every group (loads them all), in group then name order."""
        return [error for group in GROUPS for error in self.registry(group).errors]

    def _factories(self, group: str) -> Registry:
        plugins, errors = self._load(group)
        usable: dict[str, Plugin] = {}
        for name, plugin in plugins.items():
            if callable(plugin.obj):
                usable[name] = plugin
            else:
                errors.append(
                    plugin_error(plugin, f"names a {type(plugin.obj).__name__}, not a factory")
                )
        return Registry(group, usable, errors)

    def _load(self, group: str) -> tuple[dict[str, Plugin], list[PluginError]]:
        errors = [clash for clash in self._entry_points.clashes if clash.group == group]
        plugins: dict[str, Plugin] = {}
        for name, entry_point in self._entry_points.by_group[group].items():
            distribution, version = _distribution_of(entry_point)
            try:
                obj = entry_point.load()
            except Exception as exc:
                errors.append(
                    PluginError(
                        f"{_KIND[group]} '{name}' from {_origin(distribution, version)} failed "
                        f"to load ({entry_point.value}): {describe_exception(exc)}",
                        group=group,
                        name=name,
                        distribution=distribution,
                    )
                )
                continue
            plugins[name] = Plugin(group, name, entry_point.value, distribution, version, obj)
        return plugins, errors


# -- discovery ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _EntryPoints:
    """The entry points of our groups, found by one scan; clashing names are set apart."""

    by_group: Mapping[str, Mapping[str, metadata.EntryPoint]]
    clashes: tuple[PluginError, ...]


def _scan() -> _EntryPoints:
    found = metadata.entry_points()
    by_group: dict[str, dict[str, metadata.EntryPoint]] = {}
    clashes: list[PluginError] = []
    for group in GROUPS:
        by_name: dict[str, list[metadata.EntryPoint]] = {}
        for entry_point in found.select(group=group):
            by_name.setdefault(entry_point.name, []).append(entry_point)
        by_group[group] = {}
        for name in sorted(by_name):
            claims = by_name[name]
            if len(claims) == 1:
                by_group[group][name] = claims[0]
            else:
                clashes.append(_clash(group, name, claims))
    return _EntryPoints(by_group, tuple(clashes))


def _clash(group: str, name: str, claims: list[metadata.EntryPoint]) -> PluginError:
    owners = sorted(
        (_distribution_of(ep)[0] or "an unnamed distribution", _distribution_of(ep)[1], ep.value)
        for ep in claims
    )
    listed = ", ".join(f"{_origin(dist, version)} ({value})" for dist, version, value in owners)
    return PluginError(
        f"{_KIND[group]} '{name}' is claimed by {len(owners)} distributions: {listed}; "
        "none of them is used until all but one are uninstalled",
        group=group,
        name=name,
        distribution=owners[0][0],
        distributions=tuple(dist for dist, _, _ in owners),
    )


_lock = threading.Lock()
_scanned: _EntryPoints | None = None
_default: Plugins | None = None


def load_plugins(deps: Dependencies | None = None) -> Plugins:
    """The installed plugins. Scanning entry points is slow, so it happens once per process.

    `deps` is only used to describe an action whose factory must be called to learn its
    schemas; without it such a factory gets an empty container. The result for
    `deps=None` is shared by the whole process.
    """
    global _scanned, _default
    with _lock:
        if _scanned is None:
            _scanned = _scan()
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


# -- actions -----------------------------------------------------------------------------


def describe_action(plugin: Plugin, deps: Dependencies | None = None) -> ActionInfo:
    """What an action entry point declares, read from its class without running it if possible.

    The class is the entry point itself, the factory's return annotation, or the factory's
    `action_class` attribute; failing all three, the factory is called with the container.
    """
    cls = _action_class(plugin, deps)
    schemas: dict[str, Mapping[str, JSON]] = {}
    for attribute in ("input_schema", "output_schema"):
        schema = getattr(cls, attribute)
        if not isinstance(schema, Mapping):
            raise plugin_error(plugin, f"has an {attribute} that is not a JSON object")
        for path, problem in schema_problems(schema):
            at = "/".join(str(part) for part in path)
            where = f" at '{at}'" if at else ""
            raise plugin_error(plugin, f"has an unusable {attribute}{where}: {problem}")
        schemas[attribute] = schema
    return ActionInfo(
        name=plugin.name,
        input_schema=schemas["input_schema"],
        output_schema=schemas["output_schema"],
        compensable=cls.compensable(),
        description=_description(cls),
        distribution=plugin.distribution,
        version=plugin.version,
    )


def _action_class(plugin: Plugin, deps: Dependencies | None) -> type[Action]:
    obj = plugin.obj
    if isinstance(obj, type):
        if issubclass(obj, Action):
            return obj
        raise plugin_error(plugin, f"names the class {obj.__qualname__}, which is not an Action")
    if not callable(obj):
        raise plugin_error(plugin, f"names a {type(obj).__name__}, not an Action class or factory")
    for candidate in (_return_annotation(obj), getattr(obj, "action_class", None)):
        if _is_concrete_action(candidate):
            return typing.cast(type[Action], candidate)
    # Last resort: build one. Annotating the factory's return type avoids this.
    try:
        action = call_factory(obj, deps if deps is not None else Dependencies())
    except Exception as exc:
        raise plugin_error(
            plugin,
            f"has a factory that failed while its schemas were read: {describe_exception(exc)} "
            "(annotate its return type with the Action subclass, or set "
            "`factory.action_class`, so that sagactl need not call it)",
        ) from exc
    if not isinstance(action, Action):
        raise plugin_error(
            plugin, f"has a factory that returned a {type(action).__qualname__}, not an Action"
        )
    return type(action)


def _return_annotation(factory: Any) -> Any:
    try:
        return typing.get_type_hints(factory).get("return")
    except Exception:  # unresolvable annotations: fall back to the other ways
        return None


def _is_concrete_action(candidate: Any) -> bool:
    return (
        isinstance(candidate, type)
        and issubclass(candidate, Action)
        and candidate is not Action
        and not inspect.isabstract(candidate)
    )


def _description(cls: type[Action]) -> str:
    if cls.description:
        return cls.description
    doc = cls.__dict__.get("__doc__")  # not inherited: Action's own docstring is not a summary
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ") if doc else ""


def call_factory(factory: Any, deps: Dependencies) -> Any:
    """Calls a factory or class with the container when it takes an argument, bare otherwise."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return factory(deps)
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    return factory(deps) if any(p.kind in positional for p in parameters) else factory()


# -- definitions -------------------------------------------------------------------------


def _definition_folder(plugin: Plugin) -> Path:
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


# -- messages ----------------------------------------------------------------------------


def _distribution_of(entry_point: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = entry_point.dist
    if dist is None:
        return None, None
    return dist.name, dist.version


def _origin(distribution: str | None, version: str | None) -> str:
    if distribution is None:
        return "an unnamed distribution"
    return f"{distribution} {version}" if version else distribution


def plugin_error(plugin: Plugin, problem: str) -> PluginError:
    """`<kind> '<name>' from <distribution> <problem>`: one line naming the distribution."""
    return PluginError(
        f"{_KIND.get(plugin.group, 'plugin')} '{plugin.name}' from {plugin.origin} {problem}",
        group=plugin.group,
        name=plugin.name,
        distribution=plugin.distribution,
    )


def describe_exception(exc: BaseException) -> str:
    """`Type: message` on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
