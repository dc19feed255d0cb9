"""`sagactl actions`: the installed actions, where they come from, and their schemas."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from ..action import JSON, ActionInfo
from ..plugins import COMMANDS, load_plugins
from ..settings import check_declared
from .commands import BUILTIN, plugin_commands
from .options import EXIT_PLUGIN_ERRORS


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--strict", is_flag=True, help="Exit 1 when a plugin failed to load.")
@click.pass_context
def actions(ctx: click.Context, as_json: bool, strict: bool) -> None:
    """List the installed actions: distribution, version, compensation and schemas."""
    plugins = load_plugins()
    infos = plugins.actions.infos()
    check_declared()  # the settings the loaded packages declared, before anything is shown
    if as_json:
        click.echo(json.dumps([info.to_json() for info in infos], indent=2, default=_jsonable))
    elif sys.stdout.isatty():
        _rich_table(infos)
    else:
        click.echo(_plain_table(infos), nl=False)
    # Command plugins' problems come from the CLI's own check of them (which also finds
    # entry points that are no click command).
    problems = [error for error in plugins.errors if error.group != COMMANDS.name]
    problems += plugin_commands(taken=set(BUILTIN))[1]
    for problem in problems:
        click.echo(f"{'error' if strict else 'warning'}: {problem}", err=True)
    if strict and problems:
        ctx.exit(EXIT_PLUGIN_ERRORS)


def _jsonable(value: Any) -> Any:
    """Schemas may be read-only mappings and tuples."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


COLUMNS = ("ACTION", "DISTRIBUTION", "VERSION", "COMPENSABLE", "INPUTS", "OUTPUTS")


def _row(info: ActionInfo) -> tuple[str, ...]:
    return (
        info.name,
        info.distribution or "-",
        info.version or "-",
        "yes" if info.compensable else "no",
        fields(info.input_schema),
        fields(info.output_schema),
    )


def fields(schema: Mapping[str, JSON]) -> str:
    """A schema's top-level properties in one line: `url*: string, retries: integer`
    (`*` marks required ones)."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return "-"
    listed = schema.get("required")
    required = listed if isinstance(listed, Sequence) and not isinstance(listed, str) else ()
    parts = []
    for name, sub in properties.items():
        kind = sub.get("type", "any") if isinstance(sub, Mapping) else "any"
        if isinstance(kind, list | tuple):
            kind = "|".join(str(k) for k in kind)
        parts.append(f"{name}{'*' if name in required else ''}: {kind}")
    return ", ".join(parts)


def _plain_table(infos: tuple[ActionInfo, ...]) -> str:
    rows = [COLUMNS, *(_row(info) for info in infos)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def _rich_table(infos: tuple[ActionInfo, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Installed actions (* = required input)")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for info in infos:
        table.add_row(*_row(info))
    Console().print(table)
