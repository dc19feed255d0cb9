"""`sagactl validate`, `schema` and `graph`: saga definitions checked, described and drawn."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..action import ActionCatalog
from ..action_cache import action_catalog
from ..errors import DefinitionError, DefinitionErrors
from ..model import CompiledSaga
from ..saga_registry import SagaRegistry
from ..settings import check_declared
from .options import DB_OPTION, EXIT_BAD_INPUT, OUTPUT_OPTION, with_store, write_output

if TYPE_CHECKING:
    from ..render.facts import Counts
    from ..store import Store

GRAPH_FORMATS = ("text", "mermaid", "dot", "json", "svg", "png")


def _catalog() -> ActionCatalog:
    """The installed actions' descriptions: the one place the definition commands get them
    from. Cached between processes (`action_cache`): these commands import no plugin
    unless something was installed or changed since.

    Loading plugins declares the settings of the packages that ship them: those are
    checked now, before the command creates anything (the CLI checked those it knew at
    start).
    """
    actions = action_catalog()
    check_declared()
    return actions


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
@OUTPUT_OPTION
def schema(output: Path | None) -> None:
    """Print the saga JSON Schema with the installed actions' inputs folded in.

    Point an editor at it: `# yaml-language-server: $schema=PATH` on a definition's first line.
    """
    from ..child_sagas import ChildCatalog
    from ..saga_schema import schema_with_actions

    actions = _catalog()
    # Installed sagas too, as `saga/NAME` with their inputs (a broken one is left out).
    catalog = ChildCatalog(actions, SagaRegistry(actions), None, list_children=True)
    text = json.dumps(schema_with_actions(catalog), indent=2, sort_keys=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        write_output(output, text.encode())


@click.command()
@click.argument("definition", metavar="NAME|FILE", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(GRAPH_FORMATS), default="text", show_default=True
)
@OUTPUT_OPTION
@click.option("--run", "run_id", metavar="RUN", help="Colour each action by its state in RUN.")
@DB_OPTION
def graph(
    definition: str | None, fmt: str, output: Path | None, run_id: str | None, db: str | None
) -> None:
    """Draw a saga's DAG: dependencies, and (dashed) the compensation order.

    With --run, the run's pinned definition is drawn with each action's state (NAME|FILE
    may then be left out).
    """
    from ..render import render

    states: dict[str, str] | None = None
    counts: Counts | None = None
    if run_id is not None:
        saga, states, counts = run_graph(db, run_id)
    elif definition is None:
        raise click.UsageError("give NAME|FILE or --run RUN")
    else:
        saga = SagaRegistry(_catalog()).resolve(definition)

    drawing = render(saga, fmt, states=states, counts=counts)
    data = drawing.encode() if isinstance(drawing, str) else drawing
    if output is not None:
        write_output(output, data)
        return
    if isinstance(drawing, bytes) and sys.stdout.isatty():
        raise click.UsageError(f"{fmt} is binary: write it to a file with -o FILE")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def run_graph(db: str | None, run_id: str) -> tuple[CompiledSaga, dict[str, str], Counts]:
    """RUN's pinned compiled saga (never the file as it is now), each action's state, and
    each fan-out's elements done of all."""

    from ..run_status import run_status

    async def read(store: Store) -> tuple[CompiledSaga, dict[str, str], Counts]:
        record = await store.get_run(run_id)
        result = await run_status(store, run_id)
        saga = CompiledSaga.from_dict(record.definition)
        states = result.action_states()  # a child saga's as ACTION/CHILD_ACTION
        counts = {
            name: result.actions[name].tally()
            for name, spec in saga.actions.items()
            if spec.for_each is not None
        }
        return saga, states, counts

    return with_store(db, read)
