"""Fault injection, part of the product: `SAGACTL_FAULTS` / `--fault ACTION:KIND[@WHEN],...`.

KIND is `error` (the attempt raises `InjectedFault`), `crash` (the process ends at once
with `os._exit`, as a power cut would) or `delay=SECONDS`; WHEN is `before` (the action
runs) or `after` (it ran, before its completion is logged), `before` by default. Faults
apply to every attempt made by the process they were given to, so a `resume` without
them recovers normally.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NoReturn

from .errors import InputError, SagaError
from .exit_codes import CRASH_EXIT_CODE as CRASH_EXIT_CODE
from .settings import Setting, declare

if TYPE_CHECKING:
    from .clock import Clock

ENV = "SAGACTL_FAULTS"

Kind = Literal["error", "crash", "delay"]
When = Literal["before", "after"]

_SPEC = re.compile(
    r"^(?P<action>[A-Za-z_][A-Za-z0-9_-]*):(?P<kind>error|crash|delay=(?P<seconds>[^@]+))"
    r"(?:@(?P<when>before|after))?$"
)


class InjectedFault(SagaError):
    """The error an `error` fault raises (retried like any error, on every attempt)."""

    code = "injected_fault"


@dataclass(frozen=True, slots=True)
class Fault:
    action: str
    kind: Kind
    when: When = "before"
    seconds: float = 0.0

    def __str__(self) -> str:
        kind = f"delay={self.seconds:g}" if self.kind == "delay" else self.kind
        return f"{self.action}:{kind}@{self.when}"


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The faults given to this process."""

    faults: tuple[Fault, ...] = ()

    @classmethod
    def parse(cls, specs: str | Iterable[str] | None) -> FaultPlan:
        """Faults from comma-separated specs; a bad one raises `InputError` naming it."""
        if specs is None:
            return cls()
        texts = [specs] if isinstance(specs, str) else list(specs)
        faults: list[Fault] = []
        for text in texts:
            for part in text.split(","):
                if part.strip():
                    faults.append(_parse_one(part.strip()))
        return cls(tuple(faults))

    @classmethod
    def from_env(cls, extra: Iterable[str] = ()) -> FaultPlan:
        """`$SAGACTL_FAULTS` plus `--fault` values."""
        return cls(FAULTS.read().faults + cls.parse(list(extra)).faults)

    def at(self, action: str, when: When) -> list[Fault]:
        return [f for f in self.faults if f.action == action and f.when == when]

    def unknown_actions(self, actions: Iterable[str]) -> list[str]:
        known = set(actions)
        return sorted({f.action for f in self.faults} - known)

    def __bool__(self) -> bool:
        return bool(self.faults)


def _parse_one(text: str) -> Fault:
    match = _SPEC.match(text)
    if match is None:
        raise InputError(
            f"fault {text!r}: expected ACTION:KIND[@WHEN] with KIND error, crash or "
            "delay=SECONDS and WHEN before or after"
        )
    when: When = "after" if match["when"] == "after" else "before"
    if match["seconds"] is not None:
        try:
            seconds = float(match["seconds"])
        except ValueError:
            raise InputError(f"fault {text!r}: delay needs a number of seconds") from None
        if not math.isfinite(seconds) or seconds < 0:
            raise InputError(f"fault {text!r}: delay must be a finite number >= 0")
        return Fault(match["action"], "delay", when, seconds)
    kind: Kind = "crash" if match["kind"] == "crash" else "error"
    return Fault(match["action"], kind, when)


async def inject(
    faults: Iterable[Fault], clock: Clock, exit: Callable[[int], NoReturn] = os._exit
) -> None:
    """Apply faults in the order given: sleep, raise or end the process."""
    for fault in faults:
        if fault.kind == "delay":
            await clock.sleep(fault.seconds)
        elif fault.kind == "error":
            raise InjectedFault(f"injected error at {fault.action} ({fault.when})")
        else:
            exit(CRASH_EXIT_CODE)


def _plan(text: str) -> FaultPlan:
    try:
        return FaultPlan.parse(text)
    except InputError as exc:
        raise ValueError(exc.message) from None


FAULTS = Setting(ENV, _plan, FaultPlan(), "faults as `--fault` takes them")
declare(FAULTS)
