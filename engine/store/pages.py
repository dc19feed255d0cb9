"""Pages of runs, newest first, by keyset: the SQL both backends share for `page_runs`.

A page ends at a cursor (`created`, `run_id`) and the next page starts strictly below it,
so a page costs one index range scan however deep it is (no OFFSET), and runs created
while someone pages never shift the pages already seen.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A run as a list shows it: no definition, no log."""

    run_id: str
    saga: str
    state: str
    created: float
    started: float | None
    finished: float | None
    owner: str | None
    node: str | None
    lease_expires: float | None = None

    @property
    def cursor(self) -> str:
        """Where the page after this run starts (`page_runs(before=...)`)."""
        return f"{self.created!r}|{self.run_id}"


def parse_cursor(cursor: str) -> tuple[float, str]:
    """`created|run_id` (what `RunSummary.cursor` gives) -> its parts; InputError otherwise."""
    created, sep, run_id = cursor.partition("|")
    try:
        stamp = float(created)
    except ValueError:
        stamp = float("nan")
    if not sep or not run_id or not math.isfinite(stamp):
        raise InputError(f"bad page cursor {cursor[:80]!r}: use the 'next' value of a page")
    return stamp, run_id


def page_sql(
    dialect: str,
    *,
    states: Collection[str] | None,
    saga: str | None,
    q: str | None,
    before: str | None,
    limit: int,
    parent: str | None = None,
) -> tuple[str, list[Any]]:
    """The query and its parameters. `q` matches a run id by prefix, a saga by name, or
    a run whose inputs hold the value `q` (e.g. the app of a build)."""
    mark = "?" if dialect == "sqlite" else "%s"
    where: list[str] = []
    params: list[Any] = []
    if states:
        where.append(f"state IN ({','.join([mark] * len(states))})")
        params.extend(states)
    if saga:
        where.append(f"saga = {mark}")
        params.append(saga)
    if parent:
        where.append(f"parent_run_id = {mark}")
        params.append(parent)
    if q:
        inputs = "json_each(inputs)" if dialect == "sqlite" else "jsonb_each_text(inputs::jsonb)"
        # A prefix by substr: LIKE would need its wildcards escaped, per dialect.
        where.append(
            f"(substr(run_id, 1, {len(q)}) = {mark} OR saga = {mark}"
            f" OR EXISTS (SELECT 1 FROM {inputs} WHERE value = {mark}))"
        )
        params.extend([q, q, q])
    if before is not None:
        created, run_id = parse_cursor(before)
        where.append(f"(created < {mark} OR (created = {mark} AND run_id < {mark}))")
        params.extend([created, created, run_id])
    lease = "NULL" if dialect == "sqlite" else "extract(epoch FROM lease_expires)::float8"
    sql = (
        "SELECT run_id, saga, state, created, started, finished, owner, node,"
        f" {lease} AS lease_expires"
        " FROM runs"
        # As `Dialect.by_state` (sql.py) says: SQLite's planner needs the index named.
        + (" INDEXED BY runs_by_state_newest" if states and dialect == "sqlite" else "")
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY created DESC, run_id DESC LIMIT {mark}"
    )
    params.append(limit)
    return sql, params


def summaries(rows: Sequence[Any]) -> list[RunSummary]:
    """Rows read by column name (`sqlite3.Row`, psycopg's `dict_row`)."""
    return [RunSummary(*(row[name] for name in _FIELDS)) for row in rows]


_FIELDS = (
    "run_id",
    "saga",
    "state",
    "created",
    "started",
    "finished",
    "owner",
    "node",
    "lease_expires",
)

CENSUS_SQL = (
    "SELECT saga, state, count(*) AS runs, min(created) AS oldest FROM runs"
    " GROUP BY saga, state ORDER BY saga, state"
)
"""Runs by saga and state, with the oldest one's creation time (for metrics)."""

INDEXES = """
CREATE INDEX runs_newest ON runs (created, run_id);
CREATE INDEX runs_by_saga_newest ON runs (saga, created, run_id);
CREATE INDEX runs_by_state_newest ON runs (state, created, run_id);
"""
"""Migration v3 (both dialects): every filter of `page_runs` walks an index backwards."""
