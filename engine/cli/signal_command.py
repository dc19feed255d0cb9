"""`sagactl signal RUN NAME [--data JSON]`: deliver a signal to a run's `wait.signal`."""

from __future__ import annotations

import sys

import click

from ..action import JSON
from ..errors import InputError
from ..json_values import NotJson, parse_json
from .live import LiveView
from .options import DB_OPTION, with_engine


@click.command()
@click.argument("run_id", metavar="RUN")
@click.argument("name", metavar="NAME")
@click.option("--data", metavar="JSON", help="The signal's data (JSON; default null).")
@click.option("--quiet", "-q", is_flag=True, help="No live view on stderr.")
@DB_OPTION
def signal(run_id: str, name: str, data: str | None, quiet: bool, db: str | None) -> None:
    """Deliver signal NAME to RUN: its `wait.signal` action gets the data as its output.

    The data is checked against the wait's schema first (exit 2, nothing stored, when it
    does not fit). A run parked waiting goes on: on SQLite this command drives it, as
    `resume` would (exit as `run` does); on PostgreSQL a worker takes it. A signal sent
    before the run reaches its wait is kept until then. Prints `RUN STATE`.
    """
    value = _data(data)
    view = LiveView(quiet=quiet)
    with view:
        result = with_engine(db, lambda e: e.signal(run_id, name, value), on_event=view)
    click.echo(f"{result.run_id} {result.state}")
    if not result.ok and result.error:
        where = f" at {result.failed_action}" if result.failed_action else ""
        click.echo(f"error: run {result.run_id} {result.state}{where}: {result.error}", err=True)
    sys.exit(result.exit_code)


def _data(text: str | None) -> JSON:
    if text is None:
        return None
    try:
        value: JSON = parse_json(text)
    except NotJson as exc:
        raise InputError(f"--data: {exc}") from None
    except ValueError as exc:
        raise InputError(f"--data is not JSON: {exc}") from None
    return value
