"""The platform records' tables as store migrations (entry point group `sagactl.migrations`).

The store applies them when it opens, in one transaction per version, so the tables exist
before any build runs and before any `sagactl app` command reads them.
"""

from __future__ import annotations

from sagactl.engine.store import Migration

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS apps (
        name TEXT PRIMARY KEY,
        active_version TEXT,
        next_number INTEGER NOT NULL DEFAULT 1,
        created TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS versions (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL REFERENCES apps (name),
        number INTEGER NOT NULL,
        artifact_id TEXT NOT NULL,
        image TEXT NOT NULL,
        digest TEXT NOT NULL,
        services TEXT NOT NULL,
        source_dir TEXT,
        run_id TEXT,
        created TEXT NOT NULL,
        UNIQUE (app, number)
    )""",
    """CREATE TABLE IF NOT EXISTS sandboxes (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL REFERENCES apps (name),
        version TEXT NOT NULL REFERENCES versions (id),
        service TEXT NOT NULL,
        runtime TEXT NOT NULL,
        state TEXT NOT NULL,
        pid INTEGER,
        process_start TEXT,
        command TEXT NOT NULL,
        log_path TEXT,
        created TEXT NOT NULL,
        stopped TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS sandboxes_app ON sandboxes (app, state)",
)

SCHEMA_V2 = (
    "CREATE TABLE IF NOT EXISTS sandbox_ports ("
    " sandbox_id TEXT PRIMARY KEY REFERENCES sandboxes (id),"
    " port INTEGER NOT NULL)",
)
"""The host port allocated to each sandbox that listens (its `$PORT`)."""


def migrations() -> list[Migration]:
    """Version 1: apps, versions, sandboxes; 2: sandbox ports (portable SQL on both)."""
    script = ";\n".join(SCHEMA) + ";\n"
    return [
        Migration(
            1,
            {"sqlite": script, "postgresql": script},
            "build: apps, versions, sandboxes",
        ),
        Migration(
            2,
            {"sqlite": _script(SCHEMA_V2), "postgresql": _script(SCHEMA_V2)},
            "build: sandbox ports",
        ),
    ]


def _script(statements: tuple[str, ...]) -> str:
    return ";\n".join(statements) + ";\n"
