"""Which commands the CLI has: ours, listed here, and those of `sagactl.commands` plugins.

Both are loaded only when asked for: `sagactl status` imports the module of `status` and
nothing else (no other command module, no plugin), so that a light command starts fast.
"""

from __future__ import annotations

import importlib

import click

from ..deps import Dependencies
from ..errors import PluginError
from ..plugin_registry import Plugin, Registry, call_factory, describe_exception, plugin_error

BUILTIN: dict[str, str] = {
    "validate": "definition_commands:validate",
    "schema": "definition_commands:schema",
    "graph": "definition_commands:graph",
    "actions": "plugin_commands:actions",
    "run": "run_commands:run",
    "status": "inspect_commands:status",
    "list": "inspect_commands:list_runs",
    "logs": "inspect_commands:logs",
    "resume": "run_commands:resume",
    "cancel": "run_commands:cancel",
    "abandon": "run_commands:abandon",
    "signal": "signal_command:signal",
    "retry": "ops_commands:retry",
    "pause": "ops_commands:pause",
    "unpause": "ops_commands:unpause",
    "prune": "admin_commands:prune",
    "worker": "worker_command:worker",
    "stats": "worker_command:stats",
    "db": "worker_command:db",
}
"""Our own commands, in the order `--help` lists them: name -> `module:attribute` here."""


def builtin_command(name: str) -> click.Command | None:
    """Our command `name`, its module imported now; None when we have no such command."""
    target = BUILTIN.get(name)
    if target is None:
        return None
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(f".{module}", __package__), attribute)
    assert isinstance(command, click.Command), target
    return command


def builtin() -> list[click.Command]:
    """Every command of ours (imports every command module)."""
    return [command for name in BUILTIN if (command := builtin_command(name)) is not None]


def plugin_commands(taken: set[str]) -> tuple[dict[str, click.Command], list[PluginError]]:
    """Commands registered by distributions in the `sagactl.commands` entry-point group,
    by name, and the problems of those that cannot be used (a name in `taken` included).
    """
    from ..plugins import load_plugins  # loads the action plugins' machinery: not for `status`

    plugins = load_plugins()
    key = (plugins, frozenset(taken))
    cached = _loaded.get(key)
    if cached is None:
        _loaded.clear()  # the plugins were rescanned (`reset_plugins`): forget the old ones
        cached = _loaded[key] = _load(plugins.commands, taken)
    return cached


_loaded: dict[tuple[object, frozenset[str]], tuple[dict[str, click.Command], list[PluginError]]]
_loaded = {}


def _load(
    registry: Registry[object], taken: set[str]
) -> tuple[dict[str, click.Command], list[PluginError]]:
    problems = list(registry.errors)
    found: dict[str, click.Command] = {}
    for plugin in registry:
        if plugin.name in taken:
            problems.append(
                plugin_error(plugin, f"is ignored: sagactl already has a '{plugin.name}' command")
            )
            continue
        try:
            found[plugin.name] = _command(plugin)
        except PluginError as exc:
            problems.append(exc)
    return found, problems


def _command(plugin: Plugin[object]) -> click.Command:
    """The click command an entry point names, or the one its function returns."""
    obj = plugin.obj
    if not isinstance(obj, click.Command):
        if not callable(obj):
            raise plugin_error(plugin, f"names a {type(obj).__name__}, not a click command")
        try:
            obj = call_factory(obj, Dependencies())
        except Exception as exc:
            raise plugin_error(
                plugin, f"failed to make its command: {describe_exception(exc)}"
            ) from exc
        if not isinstance(obj, click.Command):
            raise plugin_error(plugin, f"returned a {type(obj).__name__}, not a click command")
    return obj
