"""Action plugins: what a `sagactl.actions` entry point declares, read without running it.

An entry point names an `Action` subclass or a factory `(deps) -> Action`. Its schemas and
compensation come from the class: the entry point itself, the factory's return annotation,
or the factory's `action_class` attribute. Only when none of these names a concrete class
is the factory called, with the container.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .action import JSON, Action, ActionInfo
from .deps import Dependencies
from .errors import PluginError
from .plugin_registry import (
    Group,
    Plugin,
    Registry,
    call_factory,
    describe_exception,
    plugin_error,
)

ActionSource = Callable[..., Action]
"""An `Action` subclass or a factory making one."""


class ActionRegistry(Registry[ActionSource]):
    """The installed actions: what the compiler checks definitions against, and their factories.

    Implements `ActionCatalog`.
    """

    def __init__(
        self,
        plugins: Mapping[str, Plugin[ActionSource]],
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

    @classmethod
    def described(
        cls, registry: Registry[ActionSource], deps: Dependencies | None = None
    ) -> ActionRegistry:
        """The loaded `sagactl.actions` plugins, each described; those that cannot be join
        the errors."""
        errors = list(registry.errors)
        usable: dict[str, Plugin[ActionSource]] = {}
        infos: dict[str, ActionInfo] = {}
        for plugin in registry:
            try:
                infos[plugin.name] = describe_action(plugin, deps)
            except PluginError as exc:
                errors.append(exc)
                continue
            usable[plugin.name] = plugin
        return cls(usable, infos, errors)


def _source(plugin: Plugin[object], deps: Dependencies | None) -> ActionSource:
    if not callable(plugin.obj):
        raise plugin_error(
            plugin, f"names a {type(plugin.obj).__name__}, not an Action class or factory"
        )
    return typing.cast(ActionSource, plugin.obj)


ACTIONS: Group[ActionSource] = Group("sagactl.actions", "action", _source)
"""Described by `ActionRegistry.described` (which may need the container)."""


def describe_action(plugin: Plugin[Any], deps: Dependencies | None = None) -> ActionInfo:
    """What an action entry point declares, read from its class without running it if possible.

    The class is the entry point itself, the factory's return annotation, or the factory's
    `action_class` attribute; failing all three, the factory is called with the container.
    """
    from .json_schema import schema_problems  # jsonschema: not for commands that load no action

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


def _action_class(plugin: Plugin[Any], deps: Dependencies | None) -> type[Action]:
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


def _return_annotation(factory: object) -> object:
    try:
        return typing.get_type_hints(factory).get("return")
    except Exception:  # unresolvable annotations: fall back to the other ways
        return None


def _is_concrete_action(candidate: object) -> bool:
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
