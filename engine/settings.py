"""Settings from the environment: each parsed and range-checked in one place, at start-up.

A `Setting` names its variable, how its text becomes a typed value, the range it must
fall in and its default. `Setting.read()` gives the value or raises `SettingError` (an
`InputError`: one `error:` line, exit 2) naming the variable, what it holds and what was
expected. Every setting is declared with `declare()` when its module is imported; the CLI
reads all declared settings before any command runs (`check_declared`), so a bad value
stops the process before it creates anything. The engine's settings are here; the build
package declares its own in the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from .durations import EXAMPLES, parse_text_duration
from .errors import InputError

T = TypeVar("T")


class SettingError(InputError):
    """An environment variable whose value cannot be used."""

    code = "setting_error"


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    """One environment variable: its parser (ValueError when out of range) and default."""

    name: str
    parse: Callable[[str], T]
    default: T
    expected: str
    """What a good value looks like, for the error: `a duration from 1s to 1h`."""

    def read(self, environ: Mapping[str, str] | None = None) -> T:
        """The value from `environ` (default: the process's), or the default when unset
        or empty; SettingError when it is set to something unusable."""
        text = (os.environ if environ is None else environ).get(self.name, "")
        if not text.strip():
            return self.default
        try:
            return self.parse(text.strip())
        except (ValueError, OverflowError) as exc:
            shown = text if len(text) <= 60 else text[:57] + "..."
            reason = f"{exc}; " if str(exc) else ""
            message = f"${self.name}={shown!r}: {reason}expected {self.expected}"
            raise SettingError(message) from None


_DECLARED: dict[str, Setting[object]] = {}


def declare(*settings: Setting[T]) -> tuple[Setting[T], ...]:
    """Makes the settings known to `check_declared`; returns them."""
    for setting in settings:
        _DECLARED[setting.name] = setting  # type: ignore[assignment]
    return settings


def declared() -> tuple[Setting[object], ...]:
    return tuple(_DECLARED[name] for name in sorted(_DECLARED))


def check_declared(environ: Mapping[str, str] | None = None) -> None:
    """Reads every declared setting; the first unusable one raises SettingError."""
    for setting in declared():
        setting.read(environ)


# -- parsers: each returns a typed value or raises ValueError saying what is wrong --------


def integer(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        digits = text.lstrip("+-")
        if not digits.isdigit() or len(digits) > 19:
            raise ValueError("not a whole number")
        value = int(text)
        if not low <= value <= high:
            raise ValueError("out of range")
        return value

    return parse


def seconds(low: float, high: float) -> Callable[[str], float]:
    """A duration (`30s`, `1m`) or a plain number of seconds, within [low, high]."""

    def parse(text: str) -> float:
        try:
            value = parse_text_duration(text)
        except ValueError:
            raise ValueError("not a duration") from None
        if not low <= value <= high:
            raise ValueError("out of range")
        return value

    return parse


def duration_expected(low: float, high: float) -> str:
    return f"a duration from {low:g}s to {high:g}s, such as {EXAMPLES} or plain seconds"


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError("")


def choice(names: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(names)

    def parse(text: str) -> str:
        if text.lower() not in allowed:
            raise ValueError("")
        return text.lower()

    return parse


def text(value: str) -> str:
    if "\x00" in value or "\n" in value:
        raise ValueError("holds a NUL or a newline")
    return value


def directory(value: str) -> Path:
    """A directory that exists or can be made: the nearest existing ancestor must be a
    directory this process can write in."""
    path = Path(text(value)).expanduser()
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{probe} is not writable")
    return path


# -- the engine's own settings --------------------------------------------------------------

LEASE_MIN, LEASE_MAX = 0.1, 3600.0  # sub-second leases serve tests and rehearsals
LEASE = Setting(
    "SAGACTL_LEASE",
    seconds(LEASE_MIN, LEASE_MAX),
    30.0,
    duration_expected(LEASE_MIN, LEASE_MAX),
)
"""How long a PostgreSQL worker's claim on a run lasts without a heartbeat."""

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_LEVEL = Setting("SAGACTL_LOG_LEVEL", choice(LOG_LEVELS), "warning", ", ".join(LOG_LEVELS))

NODE = Setting("SAGACTL_NODE", text, "", "a node name")
"""This machine's node name for run affinity (default: the host name)."""

declare(LEASE)
declare(LOG_LEVEL)
declare(NODE)
