"""The CLI's shared pieces: one duration syntax for every option, one error for a bad one."""

from __future__ import annotations

import pytest
from sagactl.engine import InputError
from sagactl.engine.cli.options import seconds_of
from sagactl.engine.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("7d", 7 * 86400.0),
        ("1d12h", 129600.0),
        ("3600", 3600.0),
        ("0.5", 0.5),
        (" 12h ", 43200.0),
    ],
)
def test_documented_units_and_plain_seconds(text: str, seconds: float) -> None:
    """The README's units, days for prune, and a bare number of seconds."""
    assert seconds_of(text, "--older-than") == seconds


@pytest.mark.parametrize("text", ["soon", "", "7 d", "-1", "nan", "inf", "1e3", "2w", "1h 30m"])
def test_anything_else_is_bad_input_naming_the_option(text: str) -> None:
    """One InputError (exit 2) naming the option and the value, with examples."""
    with pytest.raises(InputError) as caught:
        seconds_of(text, "--older-than")
    assert str(caught.value).startswith(f"--older-than {text!r}: expected a duration (e.g. ")


def test_the_cli_and_definitions_share_the_parser() -> None:
    """A definition's `10m` and the CLI's `10m` are the same seconds, from one function."""
    assert seconds_of("1h30m", "--x") == parse_duration("1h30m")
    with pytest.raises(ValueError):
        parse_duration("10")  # in YAML, seconds are numbers, not strings
