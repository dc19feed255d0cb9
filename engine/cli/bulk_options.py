"""`--filter`, `--yes` and `--dry-run`: the options every bulk-capable command shares, and
running one such command over the matches (count, confirm, act, report)."""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..run_filter import RunFilter
from .options import EXIT_FAILED, EXIT_OK, with_engine

if TYPE_CHECKING:
    from ..bulk import Operation

F = TypeVar("F", bound=Callable[..., Any])


def bulk_options(command: F) -> F:
    """Adds `--filter`, `--yes` and `--dry-run` to a command that takes one RUN."""
    for option in reversed(
        [
            click.option(
                "--filter",
                "filter_text",
                metavar="FILTER",
                help="Every run matching, e.g. 'saga=build-from-tar,state=stuck,before=2d'"
                " (keys: saga, state, before).",
            ),
            click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
            click.option(
                "--dry-run", is_flag=True, help="List the runs --filter matches; change nothing."
            ),
        ]
    ):
        command = option(command)
    return command


def one_or_filter(run_id: str | None, flt: RunFilter | None, yes: bool, dry_run: bool) -> None:
    """Exactly one of RUN and a filter; `--yes`/`--dry-run` only with a filter."""
    if (run_id is None) == (flt is None):
        raise click.UsageError("give either RUN or --filter")
    if flt is None and (yes or dry_run):
        raise click.UsageError("--yes and --dry-run go with --filter")


def parse(text: str | None) -> RunFilter | None:
    return None if text is None else RunFilter.parse(text)


def run_bulk(
    db: str | None,
    operation: str,
    flt: RunFilter,
    *,
    yes: bool,
    dry_run: bool,
    act: Operation | None = None,
) -> None:
    """Count the matches (listing them with `dry_run`), ask, act on each (`act`, when not
    the operation's default), report; exits."""
    from ..bulk import act_on_matches
    from ..run_filter import matches

    now = time.time()

    async def survey(engine: Any) -> int:
        total = 0
        async for page in matches(engine.store, flt, now=now):
            total += len(page)
            if dry_run:
                for run in page:
                    click.echo(f"{run.run_id} {run.saga} {run.state} {_when(run.created)}")
        return total

    total: int = with_engine(db, survey)
    what = f"{total} run{'s' if total != 1 else ''} match {flt.text!r}"
    if dry_run or total == 0:
        click.echo(what, err=True)
        sys.exit(EXIT_OK)
    if not yes:
        click.confirm(f"{what}: {operation} them?", abort=True, err=True)

    def shown(run_id: str, outcome: str) -> None:
        click.echo(f"{run_id} {outcome}")

    report = with_engine(
        db, lambda e: act_on_matches(e, operation, flt, now=now, on_result=shown, act=act)
    )
    states = ", ".join(f"{n} {state}" for state, n in sorted(report.states.items()))
    click.echo(
        f"{operation}: {report.acted} of {total} runs ({states or 'none'}),"
        f" {report.refused} refused",
        err=True,
    )
    sys.exit(EXIT_FAILED if report.refused else EXIT_OK)


def _when(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
