"""The crash rehearsal: a crash at every log write in turn, then a resume, must end as a
clean run does, and nothing completed before the crash may run again.

The law the engine promises and its own tests check, for any saga and actions: the run
is first driven without a crash to count its log writes (N) and take its final state;
then, for each k in 1..N, on a fresh database, the process "dies" at write k (a
`CrashingStore`), the store is closed as the kernel would on a dead process, and a new
engine resumes the run. The final state is the run's state, each action's state and
outputs, and, with a probe, what the actions left behind.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..action import JSON, Action
from ..api import Engine, RunResult
from ..deps import Dependencies
from ..errors import RunNotFound
from ..events import Event, EventKind
from ..model import CompiledSaga
from ..states import ActionState
from ..store import open_store
from .crashing import CrashingStore, SimulatedCrash
from .harness import sqlite_url
from .probes import Probe, probe_db


class CrashRehearsalFailed(AssertionError):
    """A resumed run did not end as the clean run did, or re-ran completed work."""


@dataclass(frozen=True)
class FinalState:
    """What a run ended as, in the terms the rehearsal compares."""

    state: str
    actions: dict[str, tuple[ActionState, dict[str, Any] | None]]
    """Action -> (state, outputs)."""
    effect: JSON = None
    """The probe's snapshot after the run (None without a probe)."""
    elements: dict[str, tuple[ActionState, ...]] = field(default_factory=dict)
    """`for_each` action -> the state of each of its elements that has a record."""


@dataclass(frozen=True)
class Rehearsal:
    """A rehearsal that passed."""

    expected: FinalState
    """The clean run's final state, which every resumed run matched."""
    writes: int
    """Log writes of the clean run: the crash positions rehearsed."""


async def rehearse_crashes(
    saga: CompiledSaga,
    actions: Mapping[str, Action],
    inputs: Mapping[str, JSON] | None = None,
    *,
    probe: Probe | None = None,
    reset: Callable[[], Awaitable[None]] | None = None,
    deps: Dependencies | None = None,
    run_id: str = "rehearsal",
    volatile: Collection[str] = (),
) -> Rehearsal:
    """Rehearse a crash at every log write of `saga` run with `inputs`; raise
    `CrashRehearsalFailed` naming the first position that broke the law.

    `actions` maps each `uses:` name to its action. `probe` snapshots what the actions
    left behind (see `Probe`); each position runs on a fresh database, and `reset`, when
    given, clears what the actions keep elsewhere before the clean run and each position.
    Actions run one at a time so that every run writes in the same order. `volatile` names
    outputs that differ from run to run by design (`"action.output"`, e.g. a random id):
    they are left out of the comparison."""
    with tempfile.TemporaryDirectory(prefix="sagactl-rehearsal-") as folder:
        rehearsal = _Rehearsal(saga, actions, inputs, probe, reset, deps, run_id)
        rehearsal.volatile = frozenset(volatile)
        return await rehearsal.run_all(Path(folder))


class _Rehearsal:
    def __init__(
        self,
        saga: CompiledSaga,
        actions: Mapping[str, Action],
        inputs: Mapping[str, JSON] | None,
        probe: Probe | None,
        reset: Callable[[], Awaitable[None]] | None,
        deps: Dependencies | None,
        run_id: str,
    ) -> None:
        self.saga, self.actions, self.inputs = saga, actions, inputs
        self.probe, self.reset, self.deps, self.run_id = probe, reset, deps, run_id
        self.volatile: frozenset[str] = frozenset()

    def engine(self, db: str | CrashingStore) -> Engine:
        return Engine(db, actions=self.actions, deps=self.deps, max_parallel=1)

    async def run_all(self, folder: Path) -> Rehearsal:
        expected, writes = await self.clean(sqlite_url(folder, "clean.db"))
        for crash_at in range(1, writes + 1):
            await self.position(sqlite_url(folder, f"crash-{crash_at}.db"), crash_at, writes)
        return Rehearsal(expected=expected, writes=writes)

    async def clean(self, db: str) -> tuple[FinalState, int]:
        if self.reset is not None:
            await self.reset()
        async with open_store(db) as inner:
            counting = CrashingStore(inner, None)
            async with self.engine(counting) as engine:
                result = await engine.run(self.saga, self.inputs, run_id=self.run_id)
        self.expected = await self.final(db, result)
        return self.expected, counting.writes

    async def final(self, db: str, result: RunResult) -> FinalState:
        actions = {n: (s.state, self.stable(n, s.outputs)) for n, s in result.actions.items()}
        effect = None if self.probe is None else await probe_db(db, self.probe)
        elements = {
            name: tuple(s.elements[i].state for i in sorted(s.elements))
            for name, s in result.actions.items()
            if s.elements
        }
        return FinalState(
            state=str(result.state), actions=actions, effect=effect, elements=elements
        )

    def stable(self, action: str, outputs: dict[str, Any] | None) -> dict[str, Any] | None:
        """`outputs` without the volatile ones."""
        if outputs is None:
            return None
        return {k: v for k, v in outputs.items() if f"{action}.{k}" not in self.volatile}

    async def position(self, db: str, crash_at: int, writes: int) -> None:
        where = f"crash at log write {crash_at} of {writes}"
        if self.reset is not None:
            await self.reset()
        before = await self.crash(db, crash_at)
        async with self.engine(db) as engine:
            try:
                result = await engine.resume(self.run_id)
            except RunNotFound:  # the crash came before the run was created
                result = await engine.run(self.saga, self.inputs, run_id=self.run_id)
            after = await engine.store.read_log(self.run_id)
        _check_nothing_redone(before, after, where)
        got = await self.final(db, result)
        if got != self.expected:
            raise CrashRehearsalFailed(
                f"{where}: the resumed run ended differently from a clean run:\n"
                f"  clean:   {self.expected}\n  resumed: {got}"
            )

    async def crash(self, db: str, crash_at: int) -> list[Event]:
        """Run until the crash at write `crash_at`; the log as the dead process left it."""
        inner = open_store(db)
        await inner.open()
        crashing = CrashingStore(inner, crash_at)
        try:
            async with self.engine(crashing) as engine:
                await engine.run(self.saga, self.inputs, run_id=self.run_id)
        except SimulatedCrash:
            pass
        except BaseExceptionGroup as group:
            if group.subgroup(SimulatedCrash) is None:
                raise
        finally:
            try:
                log = await inner.read_log(self.run_id)
            except RunNotFound:
                log = []
            await inner.close()
        if not crashing.crashed:
            raise CrashRehearsalFailed(
                f"the run made fewer than {crash_at} log writes this time: it must write "
                "the same way on every run (is an action's behaviour random?)"
            )
        return log


def _check_nothing_redone(before: list[Event], after: list[Event], where: str) -> None:
    """No action, nor element of a `for_each` action, that had succeeded (or been
    compensated) before the crash starts again."""
    done = {r.action for r in before if r.kind is EventKind.ACTION_SUCCEEDED}
    undone = {r.action for r in before if r.kind is EventKind.ACTION_COMPENSATED}
    elements_done = _elements(before, EventKind.ELEMENT_SUCCEEDED)
    elements_undone = _elements(before, EventKind.ELEMENT_COMPENSATED)
    last = max((r.seq for r in before), default=0)
    for record in after:
        if record.seq <= last:
            continue
        element = (record.action, record.data.get("index"))
        if record.kind is EventKind.ELEMENT_STARTED and element in elements_done:
            raise CrashRehearsalFailed(
                f"{where}: element {element[1]} of {record.action} succeeded, then ran again"
            )
        if record.kind is EventKind.ELEMENT_COMPENSATION_STARTED and element in elements_undone:
            raise CrashRehearsalFailed(
                f"{where}: element {element[1]} of {record.action} was compensated, "
                "then compensated again"
            )
        if record.kind is EventKind.ACTION_STARTED and record.action in done:
            raise CrashRehearsalFailed(f"{where}: {record.action} succeeded, then ran again")
        if record.kind is EventKind.COMPENSATION_STARTED and record.action in undone:
            raise CrashRehearsalFailed(
                f"{where}: {record.action} was compensated, then compensated again"
            )


def _elements(records: list[Event], kind: EventKind) -> set[tuple[str | None, Any]]:
    return {(r.action, r.data.get("index")) for r in records if r.kind is kind}
