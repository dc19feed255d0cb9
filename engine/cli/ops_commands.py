"""`sagactl retry`, `pause` and `unpause`: an operator steering runs that exist."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ..run_filter import RunFilter
from ..states import RunState
from .bulk_options import bulk_options, one_or_filter, run_bulk
from .bulk_options import parse as parse_filter
from .live import LiveView
from .options import DB_OPTION, EXIT_OK, with_engine
from .run_inputs import report

if TYPE_CHECKING:
    from ..api import Engine, RunResult


@click.command()
@click.argument("run_id", metavar="RUN", required=False)
@click.option("--quiet", "-q", is_flag=True, help="No live view on stderr.")
@bulk_options
@DB_OPTION
def retry(
    run_id: str | None,
    quiet: bool,
    filter_text: str | None,
    yes: bool,
    dry_run: bool,
    db: str | None,
) -> None:
    """Continue a stuck RUN (or every match) where it stood, once its cause is fixed: the
    same run and idempotency keys, new attempts. Recorded in its log with who asked."""
    flt = parse_filter(filter_text)
    one_or_filter(run_id, flt, yes, dry_run)
    if flt is not None:
        run_bulk(db, "retry", flt, yes=yes, dry_run=dry_run)
    assert run_id is not None
    with LiveView(quiet=quiet) as view:
        result = with_engine(db, lambda e: e.retry(run_id), on_event=view)
    click.echo(f"{result.run_id} {result.state}")
    sys.exit(report(result))


@click.command()
@click.argument("run_id", metavar="RUN", required=False)
@click.option("--saga", metavar="NAME", help="Every queued or running run of saga NAME.")
@bulk_options
@DB_OPTION
def pause(
    run_id: str | None,
    saga: str | None,
    filter_text: str | None,
    yes: bool,
    dry_run: bool,
    db: str | None,
) -> None:
    """Pause RUN (or every match): its running actions finish, nothing new starts, no
    worker claims it, until `sagactl unpause`. Cancelling it still compensates it."""
    if saga is not None and filter_text is not None:
        raise click.UsageError("give --saga or --filter, not both")
    flt = parse_filter(filter_text)
    if saga is not None:
        flt = RunFilter.of_saga(saga, (str(RunState.QUEUED), str(RunState.RUNNING)))
    one_or_filter(run_id, flt, yes, dry_run)
    if flt is not None:
        run_bulk(db, "pause", flt, yes=yes, dry_run=dry_run)
    assert run_id is not None
    result = with_engine(db, lambda e: e.pause(run_id))
    click.echo(f"{result.run_id} {result.state}")
    if result.state is not RunState.PAUSED:
        click.echo(f"run {run_id} pauses once its running actions finish", err=True)
    sys.exit(EXIT_OK)


@click.command()
@click.argument("run_id", metavar="RUN", required=False)
@click.option(
    "--to-workers/--here",
    default=None,
    help="Leave the run to a worker, or drive it here"
    " (default: here on SQLite, to workers on PostgreSQL).",
)
@click.option("--quiet", "-q", is_flag=True, help="No live view on stderr.")
@bulk_options
@DB_OPTION
def unpause(
    run_id: str | None,
    to_workers: bool | None,
    quiet: bool,
    filter_text: str | None,
    yes: bool,
    dry_run: bool,
    db: str | None,
) -> None:
    """Let a paused RUN (or every match) go on: driven here to its end (as `resume` does)
    on SQLite; on PostgreSQL a worker takes it."""
    flt = parse_filter(filter_text)
    one_or_filter(run_id, flt, yes, dry_run)
    if flt is not None:
        from ..bulk import unpausing

        act = None if to_workers is None else unpausing(drive=not to_workers)
        run_bulk(db, "unpause", flt, yes=yes, dry_run=dry_run, act=act)
    assert run_id is not None

    async def go(engine: Engine) -> RunResult:
        workers = engine.store.dialect == "postgresql" if to_workers is None else to_workers
        return await engine.unpause(run_id, drive=not workers)

    with LiveView(quiet=quiet) as view:
        result = with_engine(db, go, on_event=view)
    click.echo(f"{result.run_id} {result.state}")
    sys.exit(EXIT_OK if result.state is RunState.RUNNING else report(result))
