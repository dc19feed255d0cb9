"""What every request handler shares: the store, the engine, the upload registry, the hub."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import structlog
from sagactl.actions.build_from_tar import StreamRegistry
from sagactl.actions.build_from_tar.entry import SAGA
from sagactl.engine import (
    Dependencies,
    Engine,
    Event,
    EventHandler,
    SagaError,
    SagaRegistry,
    load_plugins,
)
from sagactl.engine.faults import FaultPlan
from sagactl.engine.providers import ActionProvider, plugin_provider
from sagactl.engine.retention import prune_in_background
from sagactl.engine.store import Store, open_store
from starlette.requests import Request

from .config import ServerConfig
from .hub import EventHub
from .metrics import Metrics
from .tails import Tails

log = structlog.get_logger("sagactl.server")


@dataclass(slots=True)
class Services:
    config: ServerConfig
    store: Store
    engine: Engine
    deps: Dependencies
    uploads: StreamRegistry
    hub: EventHub
    sagas: SagaRegistry
    metrics: Metrics
    tails: Tails
    """Shared copies of the logs that SSE streams follow."""
    relay: EventHandler
    """The `on_event` handler of every engine here: wakes streams, times actions."""
    faults: FaultPlan
    """`$SAGACTL_FAULTS`, for rehearsing recovery as with the CLI."""
    tasks: anyio.abc.TaskGroup
    """Runs outlive the request that started them: they run here, until shutdown."""
    actions: ActionProvider
    """The installed actions, loaded and described once, for every engine here: an engine
    left to load them would check every action's schemas on the event loop, per upload."""

    def spawn(self, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        """Runs `call()` (a coroutine function) in the background, logging its failure."""

        async def guarded() -> None:
            try:
                await call()
            except Exception:
                log.exception("background task failed", task=what)

        self.tasks.start_soon(guarded, name=what)


def services_of(request: Request) -> Services:
    found: Services = request.state.services
    return found


@asynccontextmanager
async def running(config: ServerConfig) -> AsyncIterator[Services]:
    """Opens the store and an engine for the server's life; resumes orphaned runs."""
    hub = EventHub()
    metrics = Metrics()
    deps = Dependencies()
    uploads = StreamRegistry()
    deps.provide(StreamRegistry, uploads)
    async with open_store(config.db) as store, anyio.create_task_group() as tasks:

        def relay(event: Event) -> None:
            hub.publish(event)
            metrics.observe(event)

        faults = FaultPlan.from_env()
        actions = await anyio.to_thread.run_sync(_described_actions, deps)
        engine = Engine(
            store,
            actions=actions,
            deps=deps,
            on_event=relay,
            faults=faults,
            on_run=(metrics.driving,),
        )
        sagas = SagaRegistry(load_plugins().actions)
        # Compiled here, in a thread: compiling on the first upload held the event loop
        # for a third of a second, every request waiting (the load test's worst GET).
        await anyio.to_thread.run_sync(_compiled, sagas, SAGA)
        async with engine:
            services = Services(
                config=config,
                store=store,
                engine=engine,
                deps=deps,
                uploads=uploads,
                hub=hub,
                sagas=sagas,
                metrics=metrics,
                tails=Tails(store, hub, config.poll),
                relay=relay,
                faults=faults,
                tasks=tasks,
                actions=actions,
            )
            services.spawn(
                "prune runs past their retention",
                lambda: prune_in_background(store, on_pruned=metrics.pruned.inc),
            )
            if config.resume_orphans:
                services.spawn("resume orphaned runs", engine.resume_all)
            try:
                yield services
            finally:
                tasks.cancel_scope.cancel()


def _compiled(sagas: SagaRegistry, name: str) -> None:
    """Compiles and keeps `name` (a broken definition is reported when it is used)."""
    with contextlib.suppress(SagaError):
        sagas.get(name)


def _described_actions(deps: Dependencies) -> ActionProvider:
    """Loads and describes the installed actions (imports, schema checks: seconds of CPU)."""
    return plugin_provider(deps)
