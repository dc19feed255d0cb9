"""What the commands share: the `--db` option, durations, the exit codes, running the engine.

Every command takes these from here (plugin commands too), so that `--db` means the same
everywhere and no command module imports the root group.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..durations import EXAMPLES, parse_text_duration
from ..errors import InputError
from ..exit_codes import EXIT_BAD_INPUT as EXIT_BAD_INPUT
from ..exit_codes import EXIT_CRASHED as EXIT_CRASHED
from ..exit_codes import EXIT_FAILED as EXIT_FAILED
from ..exit_codes import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from ..exit_codes import EXIT_OK as EXIT_OK
from ..exit_codes import EXIT_PLUGIN_ERRORS as EXIT_PLUGIN_ERRORS
from ..store_location import ENV

if TYPE_CHECKING:
    from ..api import Engine
    from ..store import Store
    from ..store.reads import RunReads

T = TypeVar("T")

__all__ = [
    "DB_OPTION",
    "EXIT_BAD_INPUT",
    "EXIT_CRASHED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PLUGIN_ERRORS",
    "OUTPUT_OPTION",
    "FiniteFloat",
    "count",
    "seconds_of",
    "with_engine",
    "with_reader",
    "with_store",
    "write_output",
]

DB_OPTION = click.option(
    "--db",
    envvar=ENV,
    default=None,
    metavar="URL",
    help="Run store: sqlite:///PATH or postgresql://... (default: $SAGACTL_DB or the state dir).",
)


def with_engine(db: str | None, call: Callable[[Engine], Awaitable[T]], **options: Any) -> T:
    """`call(engine)` on an Engine over `db`, run to its end (see `sync.with_engine`)."""
    from ..sync import with_engine as run_with_engine  # the scheduler, only when needed

    return run_with_engine(db, call, **options)


def with_store(db: str | None, call: Callable[[Store], Awaitable[T]]) -> T:
    """`call(store)` on the opened store over `db`, run to its end: for the commands that
    only read runs, which need no engine (nor its compiler and scheduler)."""
    import anyio

    from ..store import open_store

    async def main() -> T:
        async with open_store(db) as store:
            return await call(store)

    return anyio.run(main)


def with_reader(db: str | None, call: Callable[[RunReads], Coroutine[Any, Any, T]]) -> T:
    """`call(reads)` for a command that only reads runs: from a SQLite file on this thread
    (no event loop, writer thread or migration check by write), else on the opened store."""
    from ..store.sqlite_reader import finish_now, open_reader
    from ..store_location import default_url

    reader = open_reader(default_url() if db is None else db)
    if reader is None:
        return with_store(db, call)
    try:
        return finish_now(call(reader))
    finally:
        reader.close()


def seconds_of(text: str, option: str) -> float:
    """A duration given on the command line, in seconds: `500ms`, `10s`, `10m`, `1h30m`,
    `7d`, or a number of seconds. `InputError` (exit 2) naming the option otherwise."""
    try:
        return parse_text_duration(text)
    except ValueError:
        raise InputError(
            f"{option} {text!r}: expected a duration (e.g. {EXAMPLES}, or seconds)"
        ) from None


def count(low: int = 1, high: int = 1_000_000_000) -> click.IntRange:
    """A whole number in [low, high]: a bounded range, so no value overflows a database
    integer or a buffer further in."""
    return click.IntRange(low, high)


class FiniteFloat(click.FloatRange):
    """A number in [low, high]; NaN and infinity are refused (click's range lets NaN in)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


OUTPUT_OPTION = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here."
)


def write_output(path: Path, data: bytes) -> None:
    """Writes `-o FILE`; a file that cannot be written is the caller's mistake (exit 2)."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise InputError(f"-o {path}: {exc.strerror or exc}") from None
