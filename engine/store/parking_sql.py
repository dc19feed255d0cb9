"""The SQL of parked runs, shared by both stores: concurrency-key turns, waking waiting
runs, and the signals table (`sagactl.engine.parking` says how they fit together).

A run with a concurrency key gets `key_seq`, its place among the runs of that key, when
it is created: one more than the highest so far, in the commit that creates it (SQLite
has one writer; PostgreSQL takes an advisory lock on the key first), so a run's place
is never below that of a run committed after it. A run may start when fewer than its
`limit` runs placed before it are unfinished. Each run counts only those before it, so
however the checks of several processes interleave, at most `limit` run at once, and
with a limit of 1 they run in submission order.
"""

from __future__ import annotations

from ..states import FINISHED

_FINISHED = ", ".join(f"'{state}'" for state in sorted(FINISHED))

KEY_SEQ = (
    "CASE WHEN CAST(:key AS TEXT) IS NULL THEN NULL ELSE (SELECT coalesce(max(key_seq), 0) + 1"
    " FROM runs WHERE concurrency_key = CAST(:key AS TEXT)) END"
)
"""The new run's place among the runs of its key (`insert_run`'s `key_seq`)."""

AHEAD = (
    "(SELECT count(*) FROM runs o WHERE o.concurrency_key = runs.concurrency_key"
    f" AND o.key_seq < runs.key_seq AND o.state NOT IN ({_FINISHED}))"
)
"""Runs placed before `runs`'s row on its key that still hold it or wait for it."""

ADMITTED = (
    f"(runs.concurrency_key IS NULL OR runs.state <> 'queued' OR {AHEAD} < runs.concurrency_limit)"
)
"""A run that may start (or already did): no key, or its turn came."""

TURN = f"SELECT concurrency_key, concurrency_limit, {AHEAD} AS ahead FROM runs WHERE run_id = ?"
"""A run's key, its limit and how many runs are ahead of it."""

WAKE = "UPDATE runs SET wake_at = ? WHERE run_id = ? AND state = 'waiting'"
"""A signal came: the parked run is due now."""

INSERT_SIGNAL = (
    "INSERT INTO run_signals (run_id, name, at, data) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (run_id, name) DO NOTHING"
)
PENDING_SIGNALS = "SELECT name FROM run_signals WHERE run_id = ? AND consumed IS NULL"
SIGNALS = "SELECT name, at, data, consumed FROM run_signals WHERE run_id = ? ORDER BY at, name"

DUE = (
    "SELECT run_id, owner FROM runs WHERE state = 'waiting' AND wake_at <= ?"
    " ORDER BY wake_at, run_id"
)
"""Parked runs whose timer ran out or that a signal woke (SQLite: `resume --all`)."""

PG_DUE = "(runs.state = 'waiting' AND runs.wake_at <= extract(epoch FROM now()))"
"""The same, as a condition of PostgreSQL's claims (the database clock decides)."""

PG_KEY_LOCK = "SELECT pg_advisory_xact_lock(23206, hashtext(%s))"
"""Taken before a keyed run is created on PostgreSQL: places are handed out in commit order."""
