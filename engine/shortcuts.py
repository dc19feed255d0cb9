"""One-call shortcuts over `Engine`: run, resume, cancel, abandon, inspect, prune.

Each opens its own engine on `db` (see `Engine` for the options) and closes it again;
the synchronous ones run an event loop of their own.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio

from .action import JSON
from .api import ActionsArg, Engine
from .deps import Dependencies
from .events import EventHandler
from .faults import FaultPlan
from .model import CompiledSaga
from .results import RunResult
from .store import Store

T = TypeVar("T")


async def run_saga_async(
    saga: CompiledSaga,
    inputs: Mapping[str, JSON] | None = None,
    *,
    db: str | os.PathLike[str] | Store | None = None,
    actions: ActionsArg = None,
    run_id: str | None = None,
    on_event: EventHandler | Sequence[EventHandler] | None = None,
    faults: FaultPlan | str | None = None,
    deps: Dependencies | None = None,
) -> RunResult:
    """Run a saga to its end with its own engine (see `Engine` for the options)."""
    async with Engine(db, actions=actions, on_event=on_event, faults=faults, deps=deps) as engine:
        return await engine.run(saga, inputs, run_id=run_id)


def run_saga(
    saga: CompiledSaga,
    inputs: Mapping[str, JSON] | None = None,
    *,
    db: str | os.PathLike[str] | Store | None = None,
    actions: ActionsArg = None,
    run_id: str | None = None,
    on_event: EventHandler | Sequence[EventHandler] | None = None,
    faults: FaultPlan | str | None = None,
    deps: Dependencies | None = None,
) -> RunResult:
    """`run_saga_async` from synchronous code."""

    async def main() -> RunResult:
        return await run_saga_async(
            saga,
            inputs,
            db=db,
            actions=actions,
            run_id=run_id,
            on_event=on_event,
            faults=faults,
            deps=deps,
        )

    return anyio.run(main)


def _sync(fn: Callable[[Engine], Awaitable[T]], db: Any, actions: ActionsArg = None) -> T:
    async def main() -> T:
        async with Engine(db, actions=actions) as engine:
            return await fn(engine)

    return anyio.run(main)


def resume_run(run_id: str, *, db: Any = None, actions: ActionsArg = None) -> RunResult:
    return _sync(lambda e: e.resume(run_id), db, actions)


def resume_all(*, db: Any = None, actions: ActionsArg = None) -> list[RunResult]:
    return _sync(lambda e: e.resume_all(), db, actions)


def cancel_run(run_id: str, *, db: Any = None, actions: ActionsArg = None) -> RunResult:
    return _sync(lambda e: e.cancel(run_id), db, actions)


def abandon_run(run_id: str, *, db: Any = None) -> RunResult:
    return _sync(lambda e: e.abandon(run_id), db)


def get_status(run_id: str, *, db: Any = None) -> RunResult:
    return _sync(lambda e: e.status(run_id), db)


def prune(older_than: float, *, db: Any = None, page: int = 500) -> int:
    return _sync(lambda e: e.prune(older_than, page=page), db)
