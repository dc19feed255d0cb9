"""The typed registry every entry-point group shares: `Group[T]` declares a group, and
`Registry[T]` holds its loaded plugins by name, each a `Plugin[T]`, with the errors of those
that did not load.

A group's `accept` turns the object an entry point names into the registry's value (a
factory checked callable, a folder resolved, a list of migrations checked), or raises the
`PluginError` that leaves that one plugin out. Where entry points are found and loaded is
`plugins.py`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from .deps import Dependencies
from .errors import PluginError, SagaError

T = TypeVar("T")
U = TypeVar("U")
P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Plugin(Generic[T]):
    """One loaded entry point: where it came from and what it names."""

    group: str
    name: str
    value: str
    """The entry point's target, `module:attribute`."""
    distribution: str | None
    version: str | None
    obj: T

    @property
    def origin(self) -> str:
        """The distribution and version, for messages: `acme-saga-plugin 1.0.0`."""
        return origin(self.distribution, self.version)

    def holding(self, obj: U) -> Plugin[U]:
        """The same entry point, holding `obj` instead."""
        return Plugin(self.group, self.name, self.value, self.distribution, self.version, obj)


_KINDS: dict[str, str] = {}
"""Each declared group's `kind`, for messages about its plugins."""

Accept = Callable[[Plugin[object], Dependencies | None], T]
"""Turns what an entry point names into a registry value, or raises `PluginError`. The
container is the one `load_plugins(deps)` was given (None for the shared default)."""


@dataclass(frozen=True, slots=True)
class Group(Generic[T]):
    """An entry-point group: its name, what one plugin of it is called, how it is checked.

    The engine declares its own groups in `plugins.py`; another package declares a group
    with a module-level `Group` and names it in the `sagactl.groups` entry-point group so
    that `load_plugins().errors` (and `sagactl actions`) report its broken plugins too.
    """

    name: str
    kind: str
    """What one plugin of the group is called in messages: `action`, `command`..."""
    accept: Accept[T]

    def __post_init__(self) -> None:
        _KINDS[self.name] = self.kind

    def __repr__(self) -> str:
        return f"Group({self.name!r})"


def as_is(plugin: Plugin[object], deps: Dependencies | None) -> object:
    """Keeps what the entry point names; the user of the registry checks it."""
    return plugin.obj


def factory(plugin: Plugin[object], deps: Dependencies | None) -> Callable[..., Any]:
    """A factory (or class), called later with the container."""
    if not callable(plugin.obj):
        raise plugin_error(plugin, f"names a {type(plugin.obj).__name__}, not a factory")
    return cast(Callable[..., Any], plugin.obj)


def factory_group(name: str, kind: str) -> Group[Callable[..., Any]]:
    """A group whose entry points name factories `(deps) -> object` (or classes).

    Declare it with the type of what the factories make, and `Registry.create` returns that
    type: `WIDGETS: Group[Callable[[Any], Widget]] = factory_group("acme.widgets", "widget")`.
    """
    return Group(name, kind, factory)


class Registry(Generic[T]):
    """The plugins of one group by name; a name that failed to load keeps its error."""

    def __init__(
        self, group: Group[T], plugins: Mapping[str, Plugin[T]], errors: Sequence[PluginError]
    ) -> None:
        self.group = group.name
        self.kind = group.kind
        self._plugins = {name: plugins[name] for name in sorted(plugins)}
        self._errors = tuple(sorted(errors, key=lambda e: e.name))
        self._error_by_name = {e.name: e for e in self._errors}

    @property
    def errors(self) -> tuple[PluginError, ...]:
        return self._errors

    def names(self) -> tuple[str, ...]:
        return tuple(self._plugins)

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def __iter__(self) -> Iterator[Plugin[T]]:
        return iter(self._plugins.values())

    def __len__(self) -> int:
        return len(self._plugins)

    def error_for(self, name: str) -> PluginError | None:
        """Why `name` is unusable when a distribution registered it but it did not load."""
        return self._error_by_name.get(name)

    def get(self, name: str) -> Plugin[T]:
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

    def create(self: Registry[Callable[..., P]], name: str, deps: Dependencies) -> P:
        """Calls the plugin's factory (or class) with the container."""
        plugin = self.get(name)
        try:
            made: P = call_factory(plugin.obj, deps)
        except SagaError:
            raise
        except Exception as exc:
            raise plugin_error(plugin, f"could not be created: {describe_exception(exc)}") from exc
        return made


def call_factory(factory: Callable[..., T], deps: Dependencies) -> T:
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


# -- messages ----------------------------------------------------------------------------


def kind_of(group: str) -> str:
    """What one plugin of `group` is called: `action` for `sagactl.actions`."""
    return _KINDS.get(group, "plugin")


def origin(distribution: str | None, version: str | None) -> str:
    if distribution is None:
        return "an unnamed distribution"
    return f"{distribution} {version}" if version else distribution


def plugin_error(plugin: Plugin[Any], problem: str) -> PluginError:
    """`<kind> '<name>' from <distribution> <problem>`: one line naming the distribution."""
    return PluginError(
        f"{kind_of(plugin.group)} '{plugin.name}' from {plugin.origin} {problem}",
        group=plugin.group,
        name=plugin.name,
        distribution=plugin.distribution,
    )


def describe_exception(exc: BaseException) -> str:
    """`Type: message` on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
