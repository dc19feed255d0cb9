"""The engine from synchronous code: `with_engine` runs one call on an Engine to its end.

The CLI and the one-call shortcuts below all go through it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio

from .action import JSON
from .api import ActionsArg, Engine, RunResult
from .deps import Dependencies
from .events import EventHandler
from .faults import FaultPlan
from .model import CompiledSaga
from .store import Store

T = TypeVar("T")

Db = str | os.PathLike[str] | Store | None


def with_engine(db: Db, call: Callable[[Engine], Awaitable[T]], **options: Any) -> T:
    """`call(engine)` on an Engine over `db` (options as `Engine` takes them), run to its end
    in a fresh event loop. That loop serves only this engine, so an SQLite store commits on
    it (`commit_on_loop`) unless the options say otherwise."""
    options.setdefault("commit_on_loop", True)

    async def main() -> T:
        async with Engine(db, **options) as engine:
            return await call(engine)

    return anyio.run(main)


def run_saga(
    saga: CompiledSaga,
    inputs: Mapping[str, JSON] | None = None,
    *,
    db: Db = None,
    actions: ActionsArg = None,
    run_id: str | None = None,
    on_event: EventHandler | Sequence[EventHandler] | None = None,
    faults: FaultPlan | str | None = None,
    deps: Dependencies | None = None,
) -> RunResult:
    """`run_saga_async` from synchronous code."""
    return with_engine(
        db,
        lambda e: e.run(saga, inputs, run_id=run_id),
        actions=actions,
        on_event=on_event,
        faults=faults,
        deps=deps,
    )


def resume_run(run_id: str, *, db: Db = None, actions: ActionsArg = None) -> RunResult:
    return with_engine(db, lambda e: e.resume(run_id), actions=actions)


def resume_all(*, db: Db = None, actions: ActionsArg = None) -> list[RunResult]:
    return with_engine(db, lambda e: e.resume_all(), actions=actions)


def cancel_run(run_id: str, *, db: Db = None, actions: ActionsArg = None) -> RunResult:
    return with_engine(db, lambda e: e.cancel(run_id), actions=actions)


def abandon_run(run_id: str, *, db: Db = None) -> RunResult:
    return with_engine(db, lambda e: e.abandon(run_id))


def get_status(run_id: str, *, db: Db = None) -> RunResult:
    return with_engine(db, lambda e: e.status(run_id))


def prune(older_than: float, *, db: Db = None, page: int = 500) -> int:
    return with_engine(db, lambda e: e.prune(older_than, page=page))
