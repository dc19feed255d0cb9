"""The anyio scheduler: drives one run forward, and compensates it when it fails.

One piece per concern, each changeable on its own:

- `execution`: `Execution` drives a run through the phases its `RunState` names;
  `open_run` creates a run and starts it in one commit.
- `forward`: the forward phase (actions as their dependencies complete; DAG node kinds).
- `frontier`: which actions are ready, and which are in hand.
- `compensation`: the compensation phase (undo in reverse dependency order, shielded).
- `finalize`: actions' `finalize` hooks, once, when the run's outcome is settled.
- `attempts`: one attempt of one action (faults, inputs and outputs checked, the
  process-wide limiter, the timeout), its retries, and the rollback of its transaction.
- `journal`: records applied to the in-memory status, committed in order, then emitted.
- `progress`: the progress flusher.
- `log_context`: the run and the action in the log context of the run's tasks.
- `options`: the knobs an `Engine` shares with every run.
"""

from __future__ import annotations

from .execution import Execution as Execution
from .execution import open_run as open_run
from .options import Options as Options

__all__ = ["Execution", "Options", "open_run"]
