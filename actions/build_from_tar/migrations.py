"""The platform records' tables as store migrations (entry point group `sagactl.migrations`).

The store applies them when it opens, in one transaction per version, so the tables exist
before any build runs; `records.ensure_schema` stays as the idempotent fallback for
connections opened outside the engine.
"""

from __future__ import annotations

from sagactl.engine.store import Migration

from .records import SCHEMA


def migrations() -> list[Migration]:
    """Version 1: apps, versions, sandboxes (the same portable SQL on both dialects)."""
    script = ";\n".join(SCHEMA) + ";\n"
    return [
        Migration(
            1,
            {"sqlite": script, "postgresql": script},
            "build: apps, versions, sandboxes",
        )
    ]
