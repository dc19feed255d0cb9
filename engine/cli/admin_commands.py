"""`sagactl prune` and `sagactl db upgrade`: keeping the run store in shape."""

from __future__ import annotations

import re

import click

from ..errors import InputError
from .runtime import DB_OPTION, with_engine

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_age(text: str) -> float:
    """`7d`, `12h`, `30m`, `45s`, `2w` or plain seconds, as seconds; `InputError` otherwise."""
    match = _AGE.match(text)
    if match is None:
        raise InputError(f"--older-than {text!r}: expected a number with s, m, h, d or w (e.g. 7d)")
    return float(match[1]) * _UNITS[match[2] or "s"]


@click.command()
@click.option("--older-than", "age", default="7d", show_default=True, metavar="AGE")
@click.option("--page-size", type=click.IntRange(min=1), default=500, show_default=True)
@DB_OPTION
def prune(age: str, page_size: int, db: str | None) -> None:
    """Delete finished runs (and their logs) that finished more than AGE ago, in pages."""
    seconds = parse_age(age)
    deleted = with_engine(db, lambda e: e.prune(seconds, page=page_size))
    click.echo(f"pruned {deleted} run{'s' if deleted != 1 else ''}")
