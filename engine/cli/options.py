"""What the commands share: the `--db` option, durations, the exit codes, running the engine.

Every command takes these from here (plugin commands too), so that `--db` means the same
everywhere and no command module imports the root group.
"""

from __future__ import annotations

import click

from ..durations import EXAMPLES, parse_text_duration
from ..errors import InputError
from ..faults import CRASH_EXIT_CODE
from ..store import ENV
from ..sync import with_engine

__all__ = [
    "DB_OPTION",
    "EXIT_BAD_INPUT",
    "EXIT_CRASHED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PLUGIN_ERRORS",
    "seconds_of",
    "with_engine",
]

EXIT_OK = 0
EXIT_FAILED = 1
"""The saga did not succeed: compensated, stuck or cancelled (or the run is held)."""
EXIT_PLUGIN_ERRORS = 1
"""`sagactl actions --strict`: a plugin failed to load."""
EXIT_BAD_INPUT = 2
"""A definition, an argument, an input, an unknown run: the caller's mistake."""
EXIT_CRASHED = CRASH_EXIT_CODE
"""A `crash` fault ended the process; `sagactl resume` finishes the run."""
EXIT_INTERRUPTED = 130

DB_OPTION = click.option(
    "--db",
    envvar=ENV,
    default=None,
    metavar="URL",
    help="Run store: sqlite:///PATH or postgresql://... (default: $SAGACTL_DB or the state dir).",
)


def seconds_of(text: str, option: str) -> float:
    """A duration given on the command line, in seconds: `500ms`, `10s`, `10m`, `1h30m`,
    `7d`, or a number of seconds. `InputError` (exit 2) naming the option otherwise."""
    try:
        return parse_text_duration(text)
    except ValueError:
        raise InputError(
            f"{option} {text!r}: expected a duration (e.g. {EXAMPLES}, or seconds)"
        ) from None
