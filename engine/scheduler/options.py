"""How runs are executed: the knobs an `Engine` shares with every run it drives."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import anyio

from ..clock import Clock, SystemClock
from ..deps import Dependencies
from ..events import EventHandler
from ..faults import FaultPlan
from ..tracing import RunTracing


@dataclass(slots=True)
class Options:
    """How runs are executed; shared by every run of an `Engine`."""

    clock: Clock = field(default_factory=SystemClock)
    random: Callable[[], float] = random.random
    """Jitter source, in [0, 1)."""
    max_parallel: int = 32
    """Actions of one run executing at once."""
    limiter: anyio.CapacityLimiter | None = None
    """Actions executing at once in this process, over all runs."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    deps: Dependencies = field(default_factory=Dependencies)
    on_event: Sequence[EventHandler] = ()
    progress_interval: float = 1.0
    """At most one progress-only write per run per this many seconds."""
    exit: Callable[[int], NoReturn] = os._exit
    """What a `crash` fault calls."""
    on_run: Sequence[Callable[[str, str], None]] = ()
    """Called with (run id, saga) when this process takes a run to drive (metrics)."""
    tracing: RunTracing | None = None
    """Spans of runs, attempts and compensations (None: tracing is off, at no cost)."""
