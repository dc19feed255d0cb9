"""The engine's tables, declared once for every dialect.

One template per schema step; `{placeholders}` stand for the few words the dialects spell
differently (column types, `WITHOUT ROWID`, the PostgreSQL-only lease column). The scripts
are what `migrations.py` registers as the engine's migrations: they only ever run on a
database that does not have them yet, so a template may be reworded but not changed.
"""

from __future__ import annotations

from collections.abc import Mapping

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

_WORDS: Mapping[str, Mapping[str, str]] = {
    SQLITE: {
        "real": "REAL",
        "bigint": "INTEGER",
        "bool": "INTEGER",
        "false": "0",
        "lease": "",
        "keyed": " WITHOUT ROWID",
    },
    POSTGRESQL: {
        "real": "DOUBLE PRECISION",
        "bigint": "BIGINT",
        "bool": "BOOLEAN",
        "false": "false",
        # Claims are leases only on PostgreSQL, timed by the database clock.
        "lease": ",\n    lease_expires    TIMESTAMPTZ",
        "keyed": "",
    },
}

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    namespace TEXT NOT NULL,
    version   INTEGER NOT NULL,
    applied   {real} NOT NULL,
    PRIMARY KEY (namespace, version)
)
"""

_PER_ACTION = """
CREATE TABLE {table} (
    run_id  TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    action  TEXT NOT NULL,
    at      {real} NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (run_id, action)
){keyed};
"""

V1 = (
    """
CREATE TABLE runs (
    run_id           TEXT PRIMARY KEY,
    saga             TEXT NOT NULL,
    state            TEXT NOT NULL,
    definition_hash  TEXT NOT NULL,
    definition       TEXT NOT NULL,
    inputs           TEXT NOT NULL,
    plugin_versions  TEXT NOT NULL,
    created          {real} NOT NULL,
    updated          {real} NOT NULL,
    started          {real},
    finished         {real},
    error            TEXT,
    error_code       TEXT,
    owner            TEXT,
    fence            {bigint} NOT NULL DEFAULT 0,
    cancel_requested {bool} NOT NULL DEFAULT {false},
    last_seq         {bigint} NOT NULL DEFAULT 0{lease}
);
CREATE INDEX runs_by_state ON runs (state, created);
CREATE INDEX runs_by_created ON runs (created);
CREATE INDEX runs_by_finished ON runs (finished) WHERE finished IS NOT NULL;

CREATE TABLE run_log (
    run_id  TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq     {bigint} NOT NULL,
    at      {real} NOT NULL,
    kind    TEXT NOT NULL,
    action  TEXT,
    data    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
){keyed};
"""
    + _PER_ACTION.replace("{table}", "action_checkpoints")
    + _PER_ACTION.replace("{table}", "action_progress")
)
"""Runs, their log, checkpoints and progress."""

V2 = """
ALTER TABLE runs ADD COLUMN node TEXT;
CREATE TABLE counters (name TEXT PRIMARY KEY, value {bigint} NOT NULL DEFAULT 0);
"""
"""Node affinity (a run pinned to the machine holding its inputs) and the counters behind
`sagactl stats` that cannot be derived from the runs table (takeovers)."""

V4 = """
ALTER TABLE runs ADD COLUMN trace_id TEXT;
ALTER TABLE runs ADD COLUMN retention {real};
CREATE INDEX runs_stuck ON runs (state, updated) WHERE state = 'stuck';
CREATE TABLE run_tombstones (
    run_id   TEXT PRIMARY KEY,
    saga     TEXT NOT NULL,
    finished {real},
    pruned   {real} NOT NULL
){keyed};
"""
"""Telemetry and retention: each run's trace id and how long it is kept once finished (NULL:
the store-wide default), stuck runs by age, and the ids of pruned runs, which are never
given to a new run."""


V5 = """
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_action TEXT;
CREATE INDEX runs_by_parent ON runs (parent_run_id, created, run_id);
"""
"""A child saga's run names its parent run and the parent's action (`list --parent`)."""


def script(template: str, dialect: str) -> str:
    """`template` in `dialect`'s words."""
    return template.format_map(_WORDS[dialect])


def scripts(template: str) -> dict[str, str]:
    """`template` for every dialect, as a `Migration` takes it."""
    return {dialect: script(template, dialect) for dialect in _WORDS}
