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


V6 = """
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
ALTER TABLE runs ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE runs ADD COLUMN key_seq {bigint};
ALTER TABLE runs ADD COLUMN wake_at {real};
CREATE INDEX runs_by_key ON runs (concurrency_key, key_seq) WHERE concurrency_key IS NOT NULL;
CREATE INDEX runs_waking ON runs (wake_at) WHERE state = 'waiting';
CREATE TABLE run_signals (
    run_id    TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    at        {real} NOT NULL,
    data      TEXT NOT NULL,
    consumed  {real},
    PRIMARY KEY (run_id, name)
){keyed};
"""
"""Parked runs: concurrency keys (a run's key, limit and place), the timer of a waiting
run, and the signals sent to runs (kept until consumed, and after)."""
V7 = """
ALTER TABLE runs ADD COLUMN pause_requested {bool} NOT NULL DEFAULT {false};
"""
"""`sagactl pause` of a run a live process holds: a flag its owner polls, as for cancel."""

V9 = """
CREATE INDEX run_log_resumed ON run_log (kind) WHERE kind = 'run_resumed';
"""
"""The recoveries `sagactl stats` counts, found by an index of their own instead of a scan
of the whole log (twelve million records in a store of a million runs)."""

V11 = """
CREATE INDEX runs_started ON runs (started) WHERE started IS NOT NULL;
"""
"""The runs that started, which `sagactl stats` counts, found by an index instead of a scan
of a million rows holding their definitions."""


V12 = """
CREATE TABLE run_definitions (
    digest  TEXT PRIMARY KEY,
    body    TEXT NOT NULL
);
ALTER TABLE runs ADD COLUMN definition_digest TEXT;
"""
"""Pinned definitions stored once per distinct text (keyed by its sha256), not in every
run's row: a run of a large saga no longer carries kilobytes that each write of its row
rewrites. Runs made before keep theirs in `runs.definition` (no digest); new runs leave
it empty. A rowid table on SQLite: its rows are large."""


V13 = {
    SQLITE: """
DROP INDEX IF EXISTS runs_by_state;
DROP INDEX IF EXISTS runs_by_created;
""",
    POSTGRESQL: "SELECT 1",
}
"""SQLite: two indexes that are the leading columns of others (v3's `runs_by_state_newest`
and `runs_newest`), which every query of them can walk instead: each page of theirs that a
run's creation or state change rewrote was written to the log and fsynced for nothing.
PostgreSQL keeps them (nothing changes there)."""


def script(template: str, dialect: str) -> str:
    """`template` in `dialect`'s words."""
    return template.format_map(_WORDS[dialect])


def scripts(template: str) -> dict[str, str]:
    """`template` for every dialect, as a `Migration` takes it."""
    return {dialect: script(template, dialect) for dialect in _WORDS}


SEARCH = """
CREATE TABLE run_terms (
    term     TEXT NOT NULL,
    created  {real} NOT NULL,
    run_id   TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    PRIMARY KEY (term, created, run_id)
){keyed};
CREATE INDEX run_terms_by_run ON run_terms (run_id);
"""
"""The words a run is found by (`page_runs(q=...)`): its id, its saga and every string
input up to SEARCH_TERM_MAX characters (the app of a build). Filled by a trigger on the
insert of a run, so no store writes them, and back-filled by the migration."""

SEARCH_TERM_MAX = 200

_TERMS_OF_NEW_RUN = {
    SQLITE: f"""SELECT NEW.saga AS term UNION SELECT NEW.run_id
        UNION SELECT value FROM json_each(NEW.inputs)
        WHERE type = 'text' AND length(value) <= {SEARCH_TERM_MAX}""",
    POSTGRESQL: f"""SELECT NEW.saga AS term UNION SELECT NEW.run_id
        UNION SELECT value FROM jsonb_each_text(NEW.inputs::jsonb) AS i (key, value)
        WHERE jsonb_typeof(NEW.inputs::jsonb -> key) = 'string'
        AND length(value) <= {SEARCH_TERM_MAX}""",
}

SEARCH_TRIGGERS = {
    SQLITE: f"""
CREATE TRIGGER runs_terms AFTER INSERT ON runs BEGIN
    INSERT OR IGNORE INTO run_terms (term, created, run_id)
    SELECT term, NEW.created, NEW.run_id FROM ({_TERMS_OF_NEW_RUN[SQLITE]});
END;
INSERT OR IGNORE INTO run_terms (term, created, run_id)
    SELECT saga, created, run_id FROM runs
    UNION SELECT run_id, created, run_id FROM runs
    UNION SELECT j.value, r.created, r.run_id FROM runs r, json_each(r.inputs) j
    WHERE j.type = 'text' AND length(j.value) <= {SEARCH_TERM_MAX};
""",
    POSTGRESQL: f"""
CREATE INDEX runs_by_id_bytes ON runs ((run_id COLLATE "C"));
CREATE FUNCTION sagactl_run_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_terms (term, created, run_id)
    SELECT term, NEW.created, NEW.run_id FROM ({_TERMS_OF_NEW_RUN[POSTGRESQL]}) AS t
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER runs_terms AFTER INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION sagactl_run_terms();
INSERT INTO run_terms (term, created, run_id)
    SELECT saga, created, run_id FROM runs
    UNION SELECT run_id, created, run_id FROM runs
    UNION SELECT i.value, r.created, r.run_id FROM runs r,
        jsonb_each_text(r.inputs::jsonb) AS i (key, value)
    WHERE jsonb_typeof(r.inputs::jsonb -> i.key) = 'string'
    AND length(i.value) <= {SEARCH_TERM_MAX}
    ON CONFLICT DO NOTHING;
""",
}


V14 = {
    SQLITE: f"""
DROP TRIGGER IF EXISTS runs_terms;
CREATE TRIGGER runs_terms AFTER INSERT ON runs BEGIN
    INSERT OR IGNORE INTO run_terms (term, created, run_id)
    SELECT NEW.saga, NEW.created, NEW.run_id
    UNION ALL SELECT NEW.run_id, NEW.created, NEW.run_id
    UNION ALL SELECT value, NEW.created, NEW.run_id FROM json_each(NEW.inputs)
    WHERE type = 'text' AND length(value) <= {SEARCH_TERM_MAX};
END;
""",
    POSTGRESQL: "SELECT 1",
}
"""SQLite: the search trigger without the `UNION` that made each new run's words distinct
through a temporary b-tree (a third of the trigger's cost): `INSERT OR IGNORE` leaves out a
word the run already has, so the same rows are written. PostgreSQL keeps its trigger."""


V15 = {
    SQLITE: """
DROP INDEX IF EXISTS runs_by_parent;
CREATE INDEX runs_by_parent ON runs (parent_run_id, created, run_id)
    WHERE parent_run_id IS NOT NULL;
""",
    POSTGRESQL: "SELECT 1",
}
"""SQLite: child runs by parent (v5) only: every other run was in the index too, under
NULL, and each one's creation wrote a page of it. Its queries name a parent
(`parent_run_id = ?`), which implies the index's condition. PostgreSQL keeps the index."""


def search_scripts() -> dict[str, str]:
    """The search migration for every dialect: the table, then its trigger and back-fill
    (which differ too much between dialects for one template)."""
    return {dialect: script(SEARCH, dialect) + SEARCH_TRIGGERS[dialect] for dialect in _WORDS}
