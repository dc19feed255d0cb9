"""Which commands the CLI has: ours, listed here, and those of `sagactl.commands` plugins."""

from __future__ import annotations

import click


def builtin() -> list[click.Command]:
    """Our own commands. Each lives in its own module of this package."""
    from .definition_commands import graph, schema, validate

    commands: list[click.Command] = [validate, schema, graph]
    return commands


def add_plugin_commands(group: click.Group) -> None:
    """Commands registered by distributions in the `sagactl.commands` entry-point group."""
    # Filled in by the plugin loader (engine/plugins.py).
