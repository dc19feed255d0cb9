"""`sagactl prune` and `sagactl db upgrade`: keeping the run store in shape."""

from __future__ import annotations

import click

from .options import DB_OPTION, count, seconds_of, with_engine


@click.command()
@click.option(
    "--older-than",
    "age",
    default=None,
    metavar="AGE",
    help="Every finished run older than AGE, whatever its retention.",
)
@click.option("--page-size", type=count(1, 100_000), default=500, show_default=True)
@DB_OPTION
def prune(age: str | None, page_size: int, db: str | None) -> None:
    """Delete finished runs (and their logs) past their retention, in pages.

    A run is kept for its saga's `retention:`, else $SAGACTL_RETENTION, else forever;
    with --older-than AGE (7d, 12h, 30m, 45s, or seconds), every run that finished more
    than AGE ago goes. Runs a live record needs (the build of an active version) stay.
    Each pruned run's id is kept as a tombstone and never given to a new run."""
    if age is None:
        deleted = with_engine(db, lambda e: e.prune_expired(page=page_size))
    else:
        seconds = seconds_of(age, "--older-than")
        deleted = with_engine(db, lambda e: e.prune(seconds, page=page_size))
    click.echo(f"pruned {deleted} run{'s' if deleted != 1 else ''}")
