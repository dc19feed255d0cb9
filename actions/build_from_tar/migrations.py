"""The platform records' tables as store migrations (entry point group `sagactl.migrations`).

The store applies them when it opens, in one transaction per version, so the tables exist
before any build runs; `records.ensure_schema` stays as the idempotent fallback for
connections opened outside the engine.
"""

from __future__ import annotations

from sagactl.engine.store import Migration

from .records import SCHEMA, SCHEMA_V2


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
