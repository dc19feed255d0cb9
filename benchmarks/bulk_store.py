"""A store holding a million finished runs, made in SQL rather than by running sagas.

One real run (`TEMPLATE`) is made by the engine; the loader then copies its row and its
log records `runs` times inside the database (`generate_series` on PostgreSQL, a
recursive CTE on SQLite), with new ids in ascending order and times spread over the past
`days` days, so the tables, indexes and JSON are those of real runs. Copying inside the
database writes 12 million records in about a minute, where running the sagas would take
hours.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

TEMPLATE = "bulk-template"
ID_FORMAT = "bulk-{:07d}"
"""The ids of the copies, in the order of their `created` time (copy 0 is the oldest)."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the copies sit in time: copy `i` was created at `first + i * step`."""

    runs: int
    first: float
    step: float

    def created(self, index: int) -> float:
        return self.first + index * self.step

    def finished(self, index: int) -> float:
        """Copies finish one second after they were created."""
        return self.created(index) + 1.0


def layout(runs: int, days: float, now: float | None = None) -> Layout:
    span = days * 86_400
    end = time.time() if now is None else now
    return Layout(runs, end - span - 3600, span / max(runs, 1))


_RUN_COPY = """
INSERT INTO runs (run_id, saga, state, definition_hash, definition, definition_digest,
                  inputs, plugin_versions, created, updated, started, finished, error,
                  error_code, owner, fence, cancel_requested, last_seq)
SELECT {run_id}, t.saga, t.state, t.definition_hash, t.definition, t.definition_digest,
       t.inputs, t.plugin_versions, {created}, {created} + 1, {created}, {created} + 1, t.error,
       t.error_code, NULL, t.fence, t.cancel_requested, t.last_seq
FROM {series} CROSS JOIN runs t WHERE t.run_id = '{template}'
"""

_LOG_COPY = """
INSERT INTO run_log (run_id, seq, at, kind, action, data)
SELECT {run_id}, l.seq, {created} + (l.at - t.created), l.kind, l.action, l.data
FROM {series} CROSS JOIN runs t JOIN run_log l ON l.run_id = t.run_id
WHERE t.run_id = '{template}' ORDER BY 1, 2
"""

_CHECKPOINT_COPY = """
INSERT INTO {table} (run_id, action, at, data)
SELECT {run_id}, c.action, {created}, c.data
FROM {series} CROSS JOIN {table} c WHERE c.run_id = '{template}'
"""


def _words(dialect: str, low: int, high: int, where: Layout) -> dict[str, str]:
    """The dialect's series of copy numbers [low, high) and the expressions of a copy."""
    if dialect == "sqlite":
        series = (
            f"(WITH RECURSIVE s(i) AS (SELECT {low} UNION ALL SELECT i + 1 FROM s"
            f" WHERE i + 1 < {high}) SELECT i FROM s) s"
        )
        run_id = "printf('bulk-%07d', s.i)"
    else:
        series = f"generate_series({low}, {high - 1}) AS s(i)"
        run_id = "'bulk-' || lpad(s.i::text, 7, '0')"
    return {
        "series": series,
        "run_id": run_id,
        "created": f"({where.first!r} + s.i * {where.step!r})",
        "template": TEMPLATE,
    }


def copy_statements(dialect: str, where: Layout, batch: int = 50_000) -> list[str]:
    """The statements that make the copies, `batch` runs per statement (one transaction
    each, so neither database holds millions of rows' undo at once)."""
    statements = []
    for low in range(0, where.runs, batch):
        words = _words(dialect, low, min(low + batch, where.runs), where)
        statements.append(_RUN_COPY.format_map(words))
        statements.append(_LOG_COPY.format_map(words))
        for table in ("action_checkpoints", "action_progress"):
            statements.append(_CHECKPOINT_COPY.format_map({**words, "table": table}))
    return statements


def fill_sqlite(path: str, statements: Sequence[str]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")  # a loader, not the log: no fsync per batch
        for sql in statements:
            conn.execute("BEGIN")
            conn.execute(sql)
            conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def fill_postgresql(url: str, statements: Sequence[str]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        for sql in statements:
            with conn.transaction():
                conn.execute(sql)
        conn.execute("VACUUM ANALYZE runs")
        conn.execute("VACUUM ANALYZE run_log")
