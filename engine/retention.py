"""Retention: how long finished runs are kept, what is never pruned, and background pruning.

A run is kept for its saga's `retention:` (pinned with the run), else for the store-wide
`$SAGACTL_RETENTION`, else forever. `sagactl worker` and `sagactl serve` prune in the
background (`prune_in_background`), a page of runs per transaction, and `sagactl prune`
does it on demand. Each pruned run leaves a tombstone: its id is never given to a new run
(`check_not_pruned`), so a repeated `--run-id` cannot silently start over.

A package protects the runs its live records need through the entry-point group
`sagactl.retention_pins`: each entry point names a SQL query (or a zero-argument function
returning one) whose `run_id` column lists runs that must be kept (the build package
keeps the run that built each app's active version).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import anyio
import structlog

from .deps import Dependencies
from .errors import InputError
from .plugin_registry import Group, Plugin, describe_exception, plugin_error
from .settings import Setting, declare, duration_expected, seconds
from .store.base import Store

log = structlog.get_logger("sagactl.retention")

RETENTION_MAX = 100 * 365 * 86400.0
RETENTION: Setting[float | None] = Setting(
    "SAGACTL_RETENTION",
    seconds(0, RETENTION_MAX),
    None,
    duration_expected(0, RETENTION_MAX),
)
"""How long finished runs of sagas without their own `retention:` are kept (unset: forever)."""

PRUNE_EVERY = Setting(
    "SAGACTL_PRUNE_INTERVAL", seconds(0.05, 86400.0), 60.0, duration_expected(0.05, 86400.0)
)
"""How often `worker` and `serve` look for runs past their retention."""

declare(RETENTION)
declare(PRUNE_EVERY)

BACKGROUND_PAGE = 100
"""Runs per transaction when pruning in the background: short write locks."""


class RunPruned(InputError):
    """A run id given for a new run was used before by a run since pruned."""

    code = "run_pruned"

    def __init__(self, run_id: str, pruned: float) -> None:
        when = datetime.datetime.fromtimestamp(pruned, datetime.UTC).strftime("%Y-%m-%d %H:%M")
        super().__init__(
            f"run id {run_id} belonged to a run pruned on {when} UTC: its result is gone,"
            " and an id is never reused; give another --run-id"
        )
        self.run_id = run_id


async def check_not_pruned(store: Store, run_id: str) -> None:
    """RunPruned when `run_id` is a pruned run's id."""
    pruned = await store.tombstone(run_id)
    if pruned is not None:
        raise RunPruned(run_id, pruned)


# -- pins: runs packages need kept -----------------------------------------------------------


def _pin_query(plugin: Plugin[object], deps: Dependencies | None) -> str:
    try:
        obj = plugin.obj() if callable(plugin.obj) else plugin.obj
    except Exception as exc:
        raise plugin_error(plugin, f"failed to give its query: {describe_exception(exc)}") from exc
    if not isinstance(obj, str) or not obj.strip():
        raise plugin_error(plugin, f"names a {type(obj).__name__}, not a SQL query")
    return obj


PINS: Group[str] = Group("sagactl.retention_pins", "retention pin", _pin_query)
"""Declared to the plugin registry in `sagactl.groups` (see pyproject.toml)."""


def pin_queries() -> tuple[str, ...]:
    """Every installed package's query of runs to keep. A broken one stops pruning: better
    keep everything than delete what a live record needs."""
    from .plugins import load_plugins

    registry = load_plugins().registry(PINS)
    if registry.errors:
        raise registry.errors[0]
    return tuple(plugin.obj for plugin in registry)


# -- pruning ---------------------------------------------------------------------------------


async def prune_expired(store: Store, *, page: int = BACKGROUND_PAGE) -> int:
    """Prune every finished run past its retention, `page` per transaction."""
    return await store.prune(default_retention=RETENTION.read(), page=page, keep=pin_queries())


async def prune_in_background(
    store: Store,
    *,
    every: float | None = None,
    on_pruned: Callable[[int], None] | None = None,
) -> None:
    """Prune expired runs now and every `every` seconds (`$SAGACTL_PRUNE_INTERVAL`), until
    cancelled. A failure is logged and tried again next time."""
    interval = PRUNE_EVERY.read() if every is None else every
    while True:
        try:
            pruned = await prune_expired(store)
        except Exception:
            log.exception("cannot prune runs")
        else:
            if pruned:
                log.info("pruned runs past their retention", runs=pruned)
                if on_pruned is not None:
                    on_pruned(pruned)
        await anyio.sleep(interval)
