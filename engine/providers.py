"""Where the runtime gets actions from: a `uses:` name -> an `Action` and its version.

Tests hand actions in directly (`MappingProvider`); the CLI and the API default to the
installed plugins (`plugin_provider`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from .action import Action
from .action_plugins import ACTIONS
from .deps import Dependencies
from .errors import PluginError
from .plugins import load_plugins
from .signals import WAIT_SIGNAL, WaitSignal

BUILTIN: Mapping[str, Callable[[Dependencies], Action]] = {WAIT_SIGNAL: lambda _: WaitSignal()}
"""The engine's own actions (also entry points): available even when actions are handed in."""


@runtime_checkable
class ActionProvider(Protocol):
    def create(self, uses: str) -> Action:
        """A ready action for `uses`; `PluginError` when there is none."""
        ...

    def version(self, uses: str) -> str | None:
        """The version runs pin for `uses` (the distribution's), or None."""
        ...


class MappingProvider:
    """Actions given as instances or factories, by name (what tests and embedders use)."""

    def __init__(
        self,
        actions: Mapping[str, Action | Callable[[Dependencies], Action]],
        *,
        deps: Dependencies | None = None,
        versions: Mapping[str, str] | None = None,
    ) -> None:
        self._actions = dict(actions)
        self._instances = {uses: a for uses, a in self._actions.items() if isinstance(a, Action)}
        """The actions given as instances: handed out as they are (found once, here: asking
        `isinstance` of an ABC costs a Python call, once per action of every run)."""
        self._deps = deps or Dependencies()
        self._versions = dict(versions or {})

    def create(self, uses: str) -> Action:
        instance = self._instances.get(uses)
        if instance is not None:
            return instance
        try:
            found = self._actions[uses] if uses in self._actions else BUILTIN[uses]
        except KeyError:
            raise PluginError(
                f"no action {uses!r} is installed",
                group=ACTIONS.name,
                name=uses,
                distribution=None,
            ) from None
        return found if isinstance(found, Action) else found(self._deps)

    def version(self, uses: str) -> str | None:
        return self._versions.get(uses)


class _PluginProvider:
    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps
        self._actions = load_plugins(deps).actions

    def create(self, uses: str) -> Action:
        return self._actions.create(uses, self._deps)

    def version(self, uses: str) -> str | None:
        info = self._actions.info(uses)
        return None if info is None else info.version


def plugin_provider(deps: Dependencies | None = None) -> ActionProvider:
    """The installed `sagactl.actions` entry points (`sagactl.engine.plugins`)."""
    return _PluginProvider(deps or Dependencies())


def as_provider(
    actions: ActionProvider | Mapping[str, Action | Callable[[Dependencies], Action]] | None,
    deps: Dependencies | None = None,
) -> ActionProvider:
    if actions is None:
        return plugin_provider(deps)
    if isinstance(actions, ActionProvider):
        return actions
    return MappingProvider(actions, deps=deps)
