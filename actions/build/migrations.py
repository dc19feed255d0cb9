"""The platform records' tables as store migrations (entry point group `sagactl.migrations`).

The store applies them when it opens, in one transaction per version, so the tables exist
before any build runs; `records.ensure_schema` stays as the idempotent fallback for
connections opened outside the engine.
"""

from __future__ import annotations

from typing import Any

from .records import SCHEMA


def migrations() -> list[Any]:
    """Version 1: apps, versions, sandboxes (the same portable SQL on both dialects)."""
    from sagactl.engine.store import Migration  # type: ignore[attr-defined,unused-ignore]

    script = ";\n".join(SCHEMA) + ";\n"
    return [
        Migration(
            1,
            {"sqlite": script, "postgresql": script},
            "build: apps, versions, sandboxes",
        )
    ]
