"""The SQL of retention, shared by both stores: which finished runs go, their tombstones,
and the stuck runs that alerts watch.

Statements use `?` placeholders: they run in a `Store.transaction()`, one page each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .schema import POSTGRESQL

TOMBSTONE = (
    "INSERT INTO run_tombstones (run_id, saga, finished, pruned)"
    " SELECT run_id, saga, finished, ? FROM runs WHERE run_id IN ({marks})"
    " ON CONFLICT (run_id) DO NOTHING"
)
"""Parameters: the time of pruning, then the run ids ({marks}: one `?` each)."""

STUCK_SQL = "SELECT saga, updated FROM runs WHERE state = 'stuck' ORDER BY updated"
"""Stuck runs and since when (their last record), for alerts (index `runs_stuck`)."""


def prune_candidates(
    dialect: str,
    *,
    now: float,
    finished_before: float | None,
    default_retention: float | None,
    keep: Sequence[str],
) -> tuple[str, list[Any]]:
    """A page of runs to prune, oldest finished first: the query (its last parameter is
    the page size) and its parameters but that last one."""
    params: list[Any]
    if finished_before is not None:
        where, params = "finished < ?", [finished_before]
    else:
        # A run's own retention, else the default; NULL (no default) keeps the run.
        where = "finished < ? - coalesce(retention, CAST(? AS DOUBLE PRECISION))"
        params = [now, default_retention]
    for i, query in enumerate(keep):
        # NOT IN over a NULL would keep every run: the pins' NULLs are left out.
        where += (
            f" AND run_id NOT IN (SELECT pin_{i}.run_id FROM ({query}) AS pin_{i}"
            f" WHERE pin_{i}.run_id IS NOT NULL)"
        )
    lock = " FOR UPDATE SKIP LOCKED" if dialect == POSTGRESQL else ""
    sql = (
        f"SELECT run_id FROM runs WHERE finished IS NOT NULL AND {where}"
        f" ORDER BY finished LIMIT ?{lock}"
    )
    return sql, params
