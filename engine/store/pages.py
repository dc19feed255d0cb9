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
    created_before: float | None = None,
) -> tuple[str, list[Any]]:
    """The query and its parameters. `q` matches a run id by prefix, or a word of the
    `run_terms` index (`schema.SEARCH`): a run id, a saga, a run's string input (the app
    of a build). Either way an index range, never a scan of the runs."""
    mark = "?" if dialect == "sqlite" else "%s"
    if not q:
        where, params = _filters(mark, "", states, saga, before, parent, created_before)
        # As `Dialect.by_state` (sql.py) says: SQLite's planner needs the index named.
        source = "runs INDEXED BY runs_by_state_newest" if states and mark == "?" else "runs"
        sql = _select(dialect, source, where, "")
        sql += f" ORDER BY created DESC, run_id DESC LIMIT {mark}"
        return sql, [*params, limit]
    # The words: the term's index walked newest first, stopped at `limit`.
    where, params = _filters(mark, "r.", states, saga, None, parent, created_before)
    if before is not None:
        where.append(_below(mark, "t."))
        params.extend(_cursor(before))
    by_term = _select(
        dialect, "run_terms t JOIN runs r ON r.run_id = t.run_id", [f"t.term = {mark}", *where]
    )
    by_term += f" ORDER BY t.created DESC, t.run_id DESC LIMIT {mark}"
    params = [q, *params, limit]
    # Run ids by prefix: a range of the primary key (bytewise on PostgreSQL too), for a
    # `q` long enough to pick a few runs (a shorter one matches a whole run id only).
    if len(q) < PREFIX_MIN:
        return by_term, params
    run_id = "r.run_id" if dialect == "sqlite" else 'r.run_id COLLATE "C"'
    # SQLite: `+` keeps the planner on the range, off the state and saga indexes.
    where, prefix_params = _filters(
        mark, "+r." if mark == "?" else "r.", states, saga, before, parent, created_before
    )
    by_prefix = _select(dialect, "runs r", [f"{run_id} >= {mark}", f"{run_id} < {mark}", *where])
    by_prefix += f" ORDER BY r.created DESC, r.run_id DESC LIMIT {mark}"
    params += [q, q + _HIGHEST, *prefix_params, limit]
    sql = (
        f"SELECT * FROM ({by_term}) AS by_term UNION SELECT * FROM ({by_prefix}) AS by_prefix"
        f" ORDER BY created DESC, run_id DESC LIMIT {mark}"
    )
    return sql, [*params, limit]


PREFIX_MIN = 8
"""The shortest `q` matched as a run id prefix (8 hex digits of a random run id, or
`build-` and two characters: a handful of runs, however many the store holds)."""
_HIGHEST = "\U0010ffff"
"""Sorts after every character: `q + _HIGHEST` bounds the ids that start with `q`."""


def _select(dialect: str, source: str, where: list[str], table: str = "r.") -> str:
    """The columns of a summary (of `table`, the runs' alias) from `source`."""
    lease = "NULL" if dialect == "sqlite" else f"extract(epoch FROM {table}lease_expires)::float8"
    columns = ", ".join(f"{table}{name}" for name in _FIELDS[:-1])
    return f"SELECT {columns}, {lease} AS lease_expires FROM {source}" + (
        " WHERE " + " AND ".join(where) if where else ""
    )


def _filters(
    mark: str,
    table: str,
    states: Collection[str] | None,
    saga: str | None,
    before: str | None,
    parent: str | None,
    created_before: float | None,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if states:
        where.append(f"{table}state IN ({','.join([mark] * len(states))})")
        params.extend(states)
    if saga:
        where.append(f"{table}saga = {mark}")
        params.append(saga)
    if parent:
        where.append(f"{table}parent_run_id = {mark}")
        params.append(parent)
    if created_before is not None:
        where.append(f"{table}created < {mark}")
        params.append(created_before)
    if before is not None:
        where.append(_below(mark, table))
        params.extend(_cursor(before))
    return where, params


def _below(mark: str, table: str) -> str:
    # The leading `created <=` is implied by the rest, but only it is a range the planner
    # seeks to: without it SQLite walks the index from the newest run down to the cursor.
    return (
        f"{table}created <= {mark} AND"
        f" ({table}created < {mark} OR ({table}created = {mark} AND {table}run_id < {mark}))"
    )


def _cursor(before: str) -> list[Any]:
    created, run_id = parse_cursor(before)
    return [created, created, created, run_id]


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
