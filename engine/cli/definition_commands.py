"""`sagactl validate`, `schema` and `graph`: saga definitions checked, described and drawn."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from ..action import Action, ActionCatalog, ActionInfo
from ..deps import Dependencies
from ..errors import DefinitionError, DefinitionErrors
from ..saga_registry import SagaRegistry
from ..saga_schema import schema_with_actions
from .main import EXIT_BAD_INPUT

GRAPH_FORMATS = ("text", "mermaid", "dot", "json", "svg", "png")


def _catalog() -> ActionCatalog:
    """The installed actions: the one place the definition commands get them from."""
    try:
        plugins: Any = importlib.import_module("sagactl.engine.plugins")
    except ModuleNotFoundError:
        return _EntryPointCatalog()
    catalog: ActionCatalog = plugins.load_plugins().actions
    return catalog


class _EntryPointCatalog:
    """Stand-in until `sagactl.engine.plugins` is merged: each `sagactl.actions` entry point's
    factory, called with an empty container, describes its action. Broken ones are skipped."""

    def __init__(self) -> None:
        self._infos: dict[str, ActionInfo] = {}
        for entry in metadata.entry_points(group="sagactl.actions"):
            try:
                made = entry.load()(Dependencies())
            except Exception:  # the plugin registry reports these; here they are only absent
                continue
            if isinstance(made, Action):
                self._infos[entry.name] = ActionInfo(
                    name=entry.name,
                    input_schema=made.input_schema,
                    output_schema=made.output_schema,
                    compensable=made.compensable(),
                    description=made.description,
                    distribution=entry.dist.name if entry.dist else None,
                    version=entry.dist.version if entry.dist else None,
                )

    def info(self, name: str) -> ActionInfo | None:
        return self._infos.get(name)

    def names(self) -> Sequence[str]:
        return sorted(self._infos)


@click.command()
@click.argument("definitions", nargs=-1, required=True, metavar="FILE|NAME...")
def validate(definitions: tuple[str, ...]) -> None:
    """Check saga definitions: one line per problem, `file:line:column: message`.

    Exits 0 when every definition is valid, 2 otherwise.
    """
    registry = SagaRegistry(_catalog())
    failed = False
    for item in definitions:
        try:
            saga = registry.resolve(item)
        except DefinitionError as exc:
            failed = True
            problems = exc.errors if isinstance(exc, DefinitionErrors) else [exc]
            for problem in problems:
                click.echo(str(problem) if problem.location else f"{item}: {problem}", err=True)
            continue
        click.echo(f"{item}: ok ({saga.name}, {len(saga)} actions, {saga.canonical_hash[:12]})")
    if failed:
        sys.exit(EXIT_BAD_INPUT)


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
def schema(output: Path | None) -> None:
    """Print the saga JSON Schema with the installed actions' inputs folded in.

    Point an editor at it: `# yaml-language-server: $schema=PATH` on a definition's first line.
    """
    text = json.dumps(schema_with_actions(_catalog()), indent=2, sort_keys=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@click.command()
@click.argument("definition", metavar="NAME|FILE", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(GRAPH_FORMATS), default="text", show_default=True
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.option("--run", "run_id", metavar="RUN", help="Colour each action by its state in RUN.")
@click.option("--db", envvar="SAGACTL_DB", default=None, metavar="URL", help="Run store (--run).")
def graph(
    definition: str | None, fmt: str, output: Path | None, run_id: str | None, db: str | None
) -> None:
    """Draw a saga's DAG: dependencies, and (dashed) the compensation order.

    With --run, the run's pinned definition is drawn with each action's state (NAME|FILE
    may then be left out).
    """
    from ..render import render

    states: dict[str, str] | None = None
    if run_id is not None:
        from .runtime import run_graph

        saga, states = run_graph(db, run_id)
    elif definition is None:
        raise click.UsageError("give NAME|FILE or --run RUN")
    else:
        saga = SagaRegistry(_catalog()).resolve(definition)

    drawing = render(saga, fmt, states=states)
    data = drawing.encode() if isinstance(drawing, str) else drawing
    if output is not None:
        output.write_bytes(data)
        return
    if isinstance(drawing, bytes) and sys.stdout.isatty():
        raise click.UsageError(f"{fmt} is binary: write it to a file with -o FILE")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
