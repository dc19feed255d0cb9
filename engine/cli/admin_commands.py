"""`sagactl prune` and `sagactl db upgrade`: keeping the run store in shape."""

from __future__ import annotations

import click

from .options import DB_OPTION, count, seconds_of, with_engine


@click.command()
@click.option("--older-than", "age", default="7d", show_default=True, metavar="AGE")
@click.option("--page-size", type=count(1, 100_000), default=500, show_default=True)
@DB_OPTION
def prune(age: str, page_size: int, db: str | None) -> None:
    """Delete finished runs (and their logs) that finished more than AGE ago, in pages.

    AGE is a duration: 7d, 12h, 30m, 45s, or a number of seconds."""
    seconds = seconds_of(age, "--older-than")
    deleted = with_engine(db, lambda e: e.prune(seconds, page=page_size))
    click.echo(f"pruned {deleted} run{'s' if deleted != 1 else ''}")
