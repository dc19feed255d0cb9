"""`sagactl run`, `resume`, `cancel` and `abandon`: commands that drive or end runs."""

from __future__ import annotations

import sys

import click

from ..api import Engine, RunResult, check_inputs, new_run_id
from ..errors import InputError
from ..faults import FaultPlan
from ..saga_registry import SagaRegistry
from ..states import RunState
from .bulk_options import bulk_options, one_or_filter, run_bulk
from .bulk_options import parse as parse_filter
from .definition_commands import _catalog
from .live import LiveView
from .options import DB_OPTION, EXIT_FAILED, EXIT_OK, with_engine
from .run_inputs import RunIdAnnouncer, parse_inputs, report


@click.command()
@click.argument("definition", metavar="NAME|FILE")
@click.option("--input", "-i", "pairs", multiple=True, metavar="K=V", help="A saga input.")
@click.option("--run-id", metavar="ID", help="Run id; running again with it is idempotent.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC",
    help="Inject a fault, ACTION:KIND[@WHEN] (as $SAGACTL_FAULTS) to rehearse recovery.",
)
@click.option("--detach", is_flag=True, help="Only create the run, queued for a worker.")
@click.option(
    "--from",
    "source",
    metavar="RUN",
    help="Fork RUN: its pinned definition and inputs, but those given with --input.",
)
@click.option("--quiet", "-q", is_flag=True, help="No live view on stderr.")
@DB_OPTION
def run(
    definition: str,
    pairs: tuple[str, ...],
    run_id: str | None,
    faults: tuple[str, ...],
    detach: bool,
    source: str | None,
    quiet: bool,
    db: str | None,
) -> None:
    """Run a saga; print its run id on stdout, the live view on stderr.

    Exits 0 when it succeeded (or was paused), 1 when it did not (compensated, stuck,
    cancelled), 2 on bad input (including an input error raised by an action).
    """
    if source is not None:
        from .fork_command import run_fork

        run_fork(definition, source, pairs, run_id, faults, detach=detach, quiet=quiet, db=db)
    saga = SagaRegistry(_catalog()).resolve(definition)
    inputs = parse_inputs(saga, pairs)
    plan = FaultPlan.from_env(faults)
    unknown = plan.unknown_actions(saga.actions)
    if unknown:
        raise InputError(f"--fault names {unknown[0]!r}, not an action of {saga.name}")
    the_id = run_id or new_run_id()
    if detach:
        with_engine(db, lambda e: e.start(saga, inputs, run_id=the_id))
        click.echo(the_id)
        return

    check_inputs(saga, inputs)  # before the id is printed: a bad input prints no id

    announce = RunIdAnnouncer(the_id)

    async def go(engine: Engine) -> RunResult:
        result = await engine.run(saga, inputs, run_id=the_id)
        announce()
        return result

    view = LiveView(saga.topological_order(), quiet=quiet)
    with view:
        result = with_engine(db, go, on_event=[announce, view], faults=plan)
    sys.exit(report(result))


@click.command()
@click.argument("run_id", metavar="RUN", required=False)
@click.option("--all", "every", is_flag=True, help="Every unfinished run nobody holds.")
@click.option("--quiet", "-q", is_flag=True, help="No live view on stderr.")
@bulk_options
@DB_OPTION
def resume(
    run_id: str | None,
    every: bool,
    quiet: bool,
    filter_text: str | None,
    yes: bool,
    dry_run: bool,
    db: str | None,
) -> None:
    """Continue RUN (or every orphaned run, or every match) from its pinned definition and
    its log."""
    flt = parse_filter(filter_text)
    if sum([run_id is not None, every, flt is not None]) != 1:
        raise click.UsageError("give one of RUN, --all or --filter")
    if flt is None and (yes or dry_run):
        raise click.UsageError("--yes and --dry-run go with --filter")
    if flt is not None:
        run_bulk(db, "resume", flt, yes=yes, dry_run=dry_run)
    view = LiveView(quiet=quiet)
    with view:
        if run_id is not None:
            results = [with_engine(db, lambda e: e.resume(run_id), on_event=view)]
        else:
            results = with_engine(db, lambda e: e.resume_all(), on_event=view)
    code = EXIT_OK
    for result in results:
        click.echo(f"{result.run_id} {result.state}")
        code = max(code, report(result))
    sys.exit(code)


@click.command()
@click.argument("run_id", metavar="RUN", required=False)
@bulk_options
@DB_OPTION
def cancel(
    run_id: str | None, filter_text: str | None, yes: bool, dry_run: bool, db: str | None
) -> None:
    """Cancel RUN (or every match): its completed actions are compensated (by its owner if
    one lives)."""
    flt = parse_filter(filter_text)
    one_or_filter(run_id, flt, yes, dry_run)
    if flt is not None:
        run_bulk(db, "cancel", flt, yes=yes, dry_run=dry_run)
    assert run_id is not None
    result = with_engine(db, lambda e: e.cancel(run_id))
    click.echo(f"{result.run_id} {result.state}")
    settled = result.state in (RunState.CANCELLED, RunState.RUNNING, RunState.COMPENSATING)
    sys.exit(EXIT_OK if settled else EXIT_FAILED)


@click.command()
@click.argument("run_id", metavar="RUN", required=False)
@bulk_options
@DB_OPTION
def abandon(
    run_id: str | None, filter_text: str | None, yes: bool, dry_run: bool, db: str | None
) -> None:
    """Give up on an unfinished (typically stuck) RUN (or every match): nothing more of it
    will run."""
    flt = parse_filter(filter_text)
    one_or_filter(run_id, flt, yes, dry_run)
    if flt is not None:
        run_bulk(db, "abandon", flt, yes=yes, dry_run=dry_run)
    assert run_id is not None
    result = with_engine(db, lambda e: e.abandon(run_id))
    click.echo(f"{result.run_id} {result.state}")
