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


EXPIRY_INDEXES = """
CREATE INDEX runs_expiring_own ON runs ((finished + retention))
    WHERE finished IS NOT NULL AND retention IS NOT NULL;
CREATE INDEX runs_expiring_default ON runs (finished)
    WHERE finished IS NOT NULL AND retention IS NULL;
"""
"""Finished runs by when they expire: those with a retention of their own by `finished +
retention`, the others (kept for the store-wide default) by `finished`. A page of
expired runs then reads only expired runs, however many long-kept runs finished before
them (through `runs_by_finished`, every page stepped over all of those again)."""


def prune_candidates(
    dialect: str,
    *,
    now: float,
    finished_before: float | None,
    default_retention: float | None,
    keep: Sequence[str],
) -> list[tuple[str, list[Any]]]:
    """The queries of a page of runs to prune, to be exhausted in turn, oldest first: each
    query (its last parameter is the page size) with its parameters but that last one."""
    if finished_before is not None:
        return [_page(dialect, "finished < ?", "finished", [finished_before], keep)]
    # A run's own retention, else the default; no default keeps those runs.
    own = _page(
        dialect,
        "retention IS NOT NULL AND finished + retention < ?",
        "finished + retention",
        [now],
        keep,
    )
    if default_retention is None:
        return [own]
    default = _page(
        dialect, "retention IS NULL AND finished < ?", "finished", [now - default_retention], keep
    )
    return [own, default]


def _page(
    dialect: str, where: str, order: str, params: list[Any], keep: Sequence[str]
) -> tuple[str, list[Any]]:
    for i, query in enumerate(keep):
        # NOT IN over a NULL would keep every run: the pins' NULLs are left out.
        where += (
            f" AND run_id NOT IN (SELECT pin_{i}.run_id FROM ({query}) AS pin_{i}"
            f" WHERE pin_{i}.run_id IS NOT NULL)"
        )
    lock = " FOR UPDATE SKIP LOCKED" if dialect == POSTGRESQL else ""
    sql = (
        f"SELECT run_id FROM runs WHERE finished IS NOT NULL AND {where}"
        f" ORDER BY {order} LIMIT ?{lock}"
    )
    return sql, params
