"""rollback: run the `rollback` saga to make an earlier version of an app active again."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from sagactl.engine import (
    Dependencies,
    Engine,
    Event,
    InputError,
    SagaError,
    SagaRegistry,
    open_store,
)
from sagactl.engine.plugins import load_plugins

from . import records

SAGA = "rollback"


class RollbackFailed(SagaError):
    """The rollback saga did not succeed; the active version is unchanged."""

    code = "rollback_failed"


async def previous_version(app: str, db: str | os.PathLike[str] | None = None) -> str:
    """The newest recorded version older than the active one."""
    async with open_store(db) as store, store.transaction() as tx:
        shown = await records.show_app(tx, app)
    return older_version(app, shown)


def older_version(app: str, shown: dict[str, Any]) -> str:
    """The newest version older than the active one, from `records.show_app`'s answer."""
    active = shown["active_version"]
    if active is None:
        raise InputError(f"app {app!r} has no active version to roll back from")
    number = records.version_number(active)
    older = [v["version"] for v in shown["versions"] if v["number"] < number]
    if not older:
        raise InputError(f"app {app!r} has no version older than {active}")
    return str(older[0])  # versions are listed newest first


async def rollback_async(
    app: str,
    version: str | None = None,
    *,
    db: str | os.PathLike[str] | None = None,
    deps: Dependencies | None = None,
    on_progress: Callable[[Event], None] | None = None,
) -> str:
    """Makes `version` (default: the one before the active) active; returns it."""
    target = version or await previous_version(app, db)
    async with open_store(db) as store, store.transaction() as tx:
        await records.show_app(tx, app)  # an unknown app is an error before any run
        found = await records.get_version(tx, target)
    if found is None or found["app"] != app:
        raise InputError(f"app {app!r} has no version {target!r}")
    saga = SagaRegistry(load_plugins().actions).get(SAGA)
    async with Engine(db, deps=deps or Dependencies(), on_event=on_progress) as engine:
        run = await engine.run(saga, {"app": app, "version": target})
    if run.state == "succeeded":
        return target
    if run.bad_input:
        raise InputError(run.error or "bad input")
    where = f" at {run.failed_action}" if run.failed_action else ""
    raise RollbackFailed(f"rollback of {app} to {target} {run.state}{where}: {run.error}")
