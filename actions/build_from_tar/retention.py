"""The build runs that retention must keep (entry point in `sagactl.retention_pins`).

A version's record points at the run that built it (`versions.run_id`); while the version
is an app's active one, or still has sandboxes running, that run's log is how an operator
finds out how it was built, so it is never pruned.
"""

from __future__ import annotations

PINNED_RUNS = (
    "SELECT v.run_id AS run_id FROM versions v JOIN apps a ON a.active_version = v.id"
    " UNION SELECT v.run_id AS run_id FROM versions v JOIN sandboxes s ON s.version = v.id"
    " WHERE s.state = 'running'"
)


def pinned_runs() -> str:
    """The query of the runs behind live versions."""
    return PINNED_RUNS
