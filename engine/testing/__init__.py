"""A testing kit for action authors: sagactl's own engine, driven the way tests need it.

- `run_action`: one action under a real `ActionContext`, on a temporary SQLite store.
- `rehearse_crashes`: a crash at every log write of a saga in turn, each resumed; the
  resumed run must end as a clean run does, and nothing completed may run again.
- `check_compensation`: an action's compensation undoes its effect, as a probe sees it.
- `sagactl.engine.testing.pytest_plugin`: the same as pytest fixtures.

Each raises an `AssertionError` subclass naming what broke, so a test needs no `assert`.
`CrashingStore` is the crash injector itself, for tests of the engine that need more.
"""

from __future__ import annotations

from .compensation import CompensationCheck as CompensationCheck
from .compensation import CompensationNotUndone as CompensationNotUndone
from .compensation import check_compensation as check_compensation
from .crashing import CrashingStore as CrashingStore
from .crashing import SimulatedCrash as SimulatedCrash
from .harness import ActionRun as ActionRun
from .harness import action_spec as action_spec
from .harness import run_action as run_action
from .harness import saga_of as saga_of
from .harness import temporary_db as temporary_db
from .probes import Probe as Probe
from .rehearsal import CrashRehearsalFailed as CrashRehearsalFailed
from .rehearsal import FinalState as FinalState
from .rehearsal import Rehearsal as Rehearsal
from .rehearsal import rehearse_crashes as rehearse_crashes

__all__ = [
    "ActionRun",
    "CompensationCheck",
    "CompensationNotUndone",
    "CrashRehearsalFailed",
    "CrashingStore",
    "FinalState",
    "Probe",
    "Rehearsal",
    "SimulatedCrash",
    "action_spec",
    "check_compensation",
    "rehearse_crashes",
    "run_action",
    "saga_of",
    "temporary_db",
]
