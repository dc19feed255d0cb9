"""The one duration syntax: `500ms`, `10s`, `10m`, `1h30m`, `7d`, or a number of seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
EXAMPLES = "500ms, 10s, 10m, 1h30m, 7d"


def parse_duration(value: str | float) -> float:
    """Seconds in `10m`, `1h30m`, `500ms`, `1.5s`, `7d` or a plain number of seconds.

    A string needs its units (`"10"` is refused: YAML gives plain seconds as numbers);
    `ValueError` for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is not a duration")
        return float(value)
    parts = _PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"'{value}' is not a duration (e.g. {EXAMPLES})")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_text_duration(text: str) -> float:
    """A duration typed by a person (an option, an environment variable): `parse_duration`'s
    units, or a plain number of seconds (`90`, `0.5`). Surrounding blanks are ignored."""
    stripped = text.strip()
    if _SECONDS.fullmatch(stripped):
        return float(stripped)
    return parse_duration(stripped)
