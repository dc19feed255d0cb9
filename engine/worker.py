"""A worker: claims runnable runs from a shared PostgreSQL store and drives them to their end.

It claims queued runs and runs whose lease expired (`claim_next`: `FOR UPDATE SKIP
LOCKED`, honouring node affinity) up to `concurrency` at once, drives each with the
`Engine`'s normal recovery rules while the engine's heartbeat renews the leases, and
sleeps on LISTEN/NOTIFY (with a poll fallback, which is also how expired leases are found)
when it has nothing to do. `stop()` (SIGTERM) stops claiming, lets the runs in hand finish
for `grace` seconds, then cancels the rest and hands their leases back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc
import structlog

from .api import ActionsArg, Engine, RunResult
from .deps import Dependencies
from .errors import InputError
from .events import EventHandler
from .metrics import Metrics
from .metrics_http import serve_metrics
from .retention import prune_in_background
from .store import Store, open_store
from .store.base import Claim, ClaimLost

log = structlog.get_logger("sagactl.worker")

SHUN_SECONDS = 30.0
"""How long a worker leaves alone a run it failed to drive (the engine raised)."""


@dataclass(slots=True)
class WorkerStats:
    """What one worker did, for its log line on exit and for tests."""

    claimed: int = 0
    finished: int = 0
    lost: int = 0
    failed: int = 0
    handed_back: int = 0
    results: list[RunResult] = field(default_factory=list)


class Worker:
    """Claims and drives runs until `stop()` (or, with `drain`, until none is runnable)."""

    def __init__(
        self,
        db: str | Store | None = None,
        *,
        concurrency: int = 4,
        actions: ActionsArg = None,
        deps: Dependencies | None = None,
        on_event: EventHandler | Sequence[EventHandler] | None = None,
        poll: float = 5.0,
        grace: float = 30.0,
        metrics_port: int | None = None,
        prune: bool = True,
    ) -> None:
        """`metrics_port`: serve Prometheus metrics there (0: any free port, see
        `metrics_bound`). `prune`: prune runs past their retention in the background."""
        if concurrency < 1:
            raise InputError("--concurrency must be at least 1")
        self.store = db if isinstance(db, Store) else open_store(db)
        if self.store.dialect != "postgresql":
            raise InputError(
                f"workers need a shared PostgreSQL store (--db postgresql://...),"
                f" not {self.store.dialect}"
            )
        from .store.postgres import PostgresStore

        assert isinstance(self.store, PostgresStore)
        self._pg: PostgresStore = self.store
        self.concurrency = concurrency
        self.poll = poll
        self.grace = grace
        self.stats = WorkerStats()
        handlers = [] if on_event is None else [on_event] if callable(on_event) else list(on_event)
        self.metrics: Metrics | None = None
        if metrics_port is not None:
            self.metrics = Metrics()
            handlers.append(self.metrics.observe)
        self._metrics_port = metrics_port
        self.metrics_bound: int | None = None
        """The port metrics are served on, once listening."""
        self._prune = prune
        self._engine = Engine(self.store, actions=actions, deps=deps, on_event=handlers)
        if self.metrics is not None:
            self._engine.options.on_run = (self.metrics.driving,)
        self._owns_store = not isinstance(db, Store)
        self._active: dict[str, anyio.CancelScope] = {}
        self._wake = anyio.Event()
        self._stopping = False
        self._lost_runs: set[str] = set()
        self._shunned: dict[str, float] = {}
        """Run id -> monotonic time until which this worker does not claim it again."""
        self.started = anyio.Event()
        """Set once the store is open and the worker listens for runs."""

    def stop(self) -> None:
        """Stop claiming; runs in hand get `grace` seconds to finish, then are handed back."""
        self._stopping = True
        self._wake.set()

    def hand_back(self) -> None:
        """Stop at once: cancel every run in hand and give its lease back."""
        self.stop()
        for scope in list(self._active.values()):
            scope.cancel()

    async def run(self) -> WorkerStats:
        """Work until `stop()`; returns what was done."""
        if self._owns_store:
            await self.store.open()
        try:
            async with self._engine as engine:
                engine.on_lost = self._lost
                async with anyio.create_task_group() as group:
                    listener = anyio.CancelScope()
                    group.start_soon(self._listen, listener)
                    side = [anyio.CancelScope(), anyio.CancelScope()]
                    await self._start_side_tasks(group, *side)
                    self.started.set()
                    await self._claim_loop(engine, group)
                    await self._drain()
                    for scope in [listener, *side]:
                        scope.cancel()
        finally:
            if self._owns_store:
                await self.store.close()  # hands back any lease still held
        return self.stats

    async def _start_side_tasks(
        self, group: anyio.abc.TaskGroup, serving: anyio.CancelScope, pruning: anyio.CancelScope
    ) -> None:
        """Metrics and retention, each under its scope, cancelled when the worker stops."""
        metrics = self.metrics

        async def metrics_server(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            assert metrics is not None and self._metrics_port is not None
            with serving:
                await serve_metrics(
                    lambda: metrics.render(self.store),
                    port=self._metrics_port,
                    task_status=task_status,
                )

        async def pruner() -> None:
            on_pruned = None if metrics is None else metrics.pruned.inc
            with pruning:
                await prune_in_background(self.store, on_pruned=on_pruned)

        if metrics is not None:
            self.metrics_bound = await group.start(metrics_server)
        if self._prune:
            group.start_soon(pruner)

    async def _claim_loop(self, engine: Engine, group: anyio.abc.TaskGroup) -> None:
        poll = min(self.poll, max(0.05, (self.store.heartbeat_interval or self.poll) * 1.5))
        while not self._stopping:
            self._wake = anyio.Event()
            free = self.concurrency - len(self._active)
            if free > 0:
                try:
                    now = time.monotonic()
                    for run_id in [r for r, t in self._shunned.items() if t < now]:
                        del self._shunned[run_id]
                    # Runs still in hand are excluded too: a failing one is handed back before
                    # `_drive` can shun it, and must not be claimed again in that gap.
                    claims: list[Claim] = await self._pg.claim_next(
                        free, exclude=self._shunned.keys() | self._active.keys()
                    )
                except Exception:
                    log.exception("cannot claim runs")
                    claims = []
                for claim in claims:
                    scope = anyio.CancelScope()
                    self._active[claim.run_id] = scope
                    self.stats.claimed += 1
                    if self.metrics is not None:
                        self.metrics.claimed(claim)
                    group.start_soon(self._drive, engine, claim, scope)
                if len(claims) == free:
                    continue  # there may be more: claim again at once
            with anyio.move_on_after(poll):
                await self._wake.wait()

    async def _listen(self, scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                if await self._pg.wait_for_work(self.poll):
                    self._wake.set()

    async def _drive(self, engine: Engine, claim: Claim, scope: anyio.CancelScope) -> None:
        started = time.monotonic()
        try:
            with scope:
                result = await engine.execute_claimed(claim)
                self.stats.finished += 1
                self.stats.results.append(result)
                log.info(
                    "run done",
                    run_id=claim.run_id,
                    state=result.state,
                    seconds=round(time.monotonic() - started, 3),
                )
            if scope.cancelled_caught and claim.run_id not in self._lost_runs:
                self.stats.handed_back += 1
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await self.store.release(claim)  # NOTIFY: another worker takes it now
        except ClaimLost:
            if claim.run_id not in self._lost_runs:  # else the heartbeat counted it already
                self.stats.lost += 1
                if self.metrics is not None:
                    self.metrics.lost.inc()
            log.warning("run lost to another worker", run_id=claim.run_id)
        except Exception:
            # E.g. an action this worker does not have installed: leave the run to other
            # workers for a while instead of claiming it again at once, in a loop.
            self.stats.failed += 1
            self._shunned[claim.run_id] = time.monotonic() + SHUN_SECONDS
            log.exception("run failed in the engine", run_id=claim.run_id)
        finally:
            self._active.pop(claim.run_id, None)
            self._wake.set()

    def _lost(self, run_id: str) -> None:
        # The heartbeat found the lease gone: stop the run here, its writes would fail.
        scope = self._active.get(run_id)
        if scope is not None:
            self._lost_runs.add(run_id)
            self.stats.lost += 1
            if self.metrics is not None:
                self.metrics.lost.inc()
            scope.cancel()

    async def _drain(self) -> None:
        with anyio.move_on_after(self.grace):
            while self._active:
                self._wake = anyio.Event()
                await self._wake.wait()
        for scope in list(self._active.values()):
            scope.cancel()
        while self._active:
            self._wake = anyio.Event()
            await self._wake.wait()


async def run_worker(
    db: str | None,
    *,
    concurrency: int = 4,
    actions: ActionsArg = None,
    poll: float = 5.0,
    grace: float = 30.0,
    metrics_port: int | None = None,
) -> WorkerStats:
    """A worker that stops on SIGTERM or SIGINT (a second signal cancels at once)."""
    import signal

    worker = Worker(
        db,
        concurrency=concurrency,
        actions=actions,
        poll=poll,
        grace=grace,
        metrics_port=metrics_port,
    )

    async def on_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                if worker._stopping:
                    worker.hand_back()
                else:
                    log.info("stopping: finishing or handing back the runs in hand")
                    worker.stop()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(on_signals)
            stats = await worker.run()
            group.cancel_scope.cancel()
    except BaseExceptionGroup as failed:
        # The worker's own error (a store that cannot open), not wrapped: one error line.
        if len(failed.exceptions) == 1:
            raise failed.exceptions[0] from None
        raise
    with contextlib.suppress(Exception):
        log.info(
            "worker stopped",
            claimed=stats.claimed,
            finished=stats.finished,
            lost=stats.lost,
            handed_back=stats.handed_back,
        )
    return stats
