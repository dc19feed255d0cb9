"""Which commands the CLI has: ours, listed here, and those of `sagactl.commands` plugins."""

from __future__ import annotations

import click

from ..deps import Dependencies
from ..errors import PluginError
from ..plugin_registry import Plugin, call_factory, describe_exception, plugin_error
from ..plugins import load_plugins


def builtin() -> list[click.Command]:
    """Our own commands. Each lives in its own module of this package."""
    from .admin_commands import prune
    from .definition_commands import graph, schema, validate
    from .inspect_commands import list_runs, logs, status
    from .plugin_commands import actions
    from .run_commands import abandon, cancel, resume, run
    from .worker_command import db, stats, worker

    definitions: list[click.Command] = [validate, schema, graph, actions]
    runtime: list[click.Command] = [run, status, list_runs, logs, resume, cancel, abandon]
    return [*definitions, *runtime, prune, worker, stats, db]


def add_plugin_commands(group: click.Group) -> None:
    """Commands registered by distributions in the `sagactl.commands` entry-point group.

    A broken command plugin costs one warning line on stderr; the CLI works without it.
    """
    registry = load_plugins().commands
    problems = list(registry.errors)
    for plugin in registry:
        try:
            command = _command(plugin)
        except PluginError as exc:
            problems.append(exc)
            continue
        existing = group.commands.get(plugin.name)
        if existing is command:  # added by an earlier `main()` in this process
            continue
        if existing is not None:
            problems.append(
                plugin_error(plugin, f"is ignored: sagactl already has a '{plugin.name}' command")
            )
            continue
        group.add_command(command, name=plugin.name)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)


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
