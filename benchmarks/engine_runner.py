"""sagactl's runtime driving the workload DAGs on a durable SQLite log.

Imported only once `sagactl.engine.api` exists (the runtime's Python API): the benchmarks
that need it skip with a clear reason before that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from sagactl.engine import Action, CompiledSaga
from sagactl.engine.api import Engine, RunResult

from .workloads import NOOP_USES, Dag, NoopAction, schema_checked_actions

T = TypeVar("T")


class EngineService:
    """One open `Engine` on an SQLite file, served by a long-lived task on `loop`.

    The engine's task group must be entered and left by one task, while pytest-benchmark
    calls `loop.run(...)` once per round (a new task each time): so a server task holds the
    engine, and each round hands it a job through a queue (microseconds, on the same loop).
    Sagas are compiled once, so rounds time running them, not compiling them.
    """

    def __init__(
        self,
        loop: asyncio.Runner,
        path: Path,
        *,
        checked: Dag | None = None,
        commit_on_loop: bool = False,
    ) -> None:
        """`checked`: also install that DAG's schema-checked plugin actions
        (`Dag.compiled(checked=True)` runs them). `commit_on_loop`: the engine's option
        (commits on this loop, as the CLI's engine makes them)."""
        self.path = path
        self._commit_on_loop = commit_on_loop
        self._loop = loop
        self._actions: dict[str, Action] = {NOOP_USES: NoopAction()}
        if checked is not None:
            self._actions.update(schema_checked_actions(checked))
        self._compiled: dict[tuple[str, bool], CompiledSaga] = {}
        self._jobs: asyncio.Queue[
            tuple[Callable[[Engine], Awaitable[Any]], asyncio.Future[Any]] | None
        ]
        self._jobs = asyncio.Queue()
        self._ready = asyncio.Event()
        self._engine: Engine | None = None
        self._server = loop.get_loop().create_task(self._serve())
        loop.run(self._started())

    async def _serve(self) -> None:
        async with Engine(
            f"sqlite:///{self.path}", actions=self._actions, commit_on_loop=self._commit_on_loop
        ) as engine:
            self._engine = engine
            self._ready.set()
            while (job := await self._jobs.get()) is not None:
                work, done = job
                try:
                    done.set_result(await work(engine))
                except Exception as exc:
                    done.set_exception(exc)

    async def _started(self) -> None:
        ready = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait({ready, self._server}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            self._server.result()  # raises why the engine did not open

    def call(self, work: Callable[[Engine], Awaitable[T]]) -> T:
        """Run `work(engine)` on the server task; returns its result."""

        async def submit() -> T:
            done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            await self._jobs.put((work, done))
            return await done

        # Not `Runner.run`: it installs a SIGINT handler per call, and taking it down again
        # formats the finished task's repr, the whole `RunResult` with every action's
        # record (about 50 µs per action on this VM, timed as if the engine spent it).
        return self._loop.get_loop().run_until_complete(submit())

    @property
    def commits(self) -> int:
        """Write transactions the engine's store has committed so far."""
        assert self._engine is not None
        return int(self._engine.store.commits)  # SQLite's group-commit counter

    def saga(self, dag: Dag, *, checked: bool = False) -> CompiledSaga:
        if (dag.name, checked) not in self._compiled:
            self._compiled[dag.name, checked] = dag.compiled(checked=checked)
        return self._compiled[dag.name, checked]

    def run(self, dag: Dag, *, checked: bool = False) -> RunResult:
        """One saga, run to its end (of schema-checked plugin actions, if `checked`)."""
        saga = self.saga(dag, checked=checked)
        return self.call(lambda engine: engine.run(saga))

    def run_many(self, dag: Dag, count: int) -> list[RunResult]:
        """`count` sagas started at once in this process; waits for all of them."""
        saga = self.saga(dag)

        async def many(engine: Engine) -> list[RunResult]:
            results: list[RunResult] = []

            async def one() -> None:
                results.append(await engine.run(saga))

            async with anyio.create_task_group() as group:
                for _ in range(count):
                    group.start_soon(one)
            return results

        return self.call(many)

    def close(self) -> None:
        async def stop() -> None:
            await self._jobs.put(None)
            await self._server

        self._loop.run(stop())
