"""The compensation phase: undoes what a `compensating` run completed.

Every completed compensable action is compensated, dependents before their dependencies
and independent ones at once, shielded from cancellation (an undo half done is worse
than one finished). A compensation that keeps failing leaves the run `stuck`; otherwise
it ends `compensated`, or `cancelled` when an operator asked for it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import anyio
import anyio.abc
import structlog

from ..errors import InputError
from ..event_payloads import ActionFailed, CompensationFailed, CompensationStarted, RunFinished
from ..events import Event, EventKind
from ..ordering import nearest_after
from ..states import ActionState, RunState, StopReason
from ..store.base import StoreTransaction
from .attempts import AttemptRunner, rollback
from .fanout import compensate_elements, completed, interrupted
from .finalize import Finalizer
from .journal import Journal, error_code, error_text

A, K = ActionState, EventKind
log = structlog.get_logger("sagactl")

_INPUT_CODES = frozenset({InputError.code, "definition_error", "run_not_found"})
"""Failure codes that mean bad input: the CLI exits 2."""


@runtime_checkable
class UndoesFailed(Protocol):
    """An action with work left behind even when it failed: a child saga
    (`sagactl.engine.child_runs.ChildSaga`), whose child run may have done work."""

    async def undo_failed(self, parent_run_id: str, action: str) -> None: ...


class CompensationPhase:
    """Compensates a run to its end."""

    def __init__(self, journal: Journal, runner: AttemptRunner, finalizer: Finalizer) -> None:
        self._journal = journal
        self._runner = runner
        self._finalizer = finalizer
        self._saga = runner.saga
        self._status = journal.status
        self._index = self._saga.positions
        self._waiting: dict[str, set[str]] = {}
        """Action -> the compensations that must finish before its own starts."""
        self._unblocks: dict[str, list[str]] = {}
        """Action -> the actions waiting for its compensation."""
        self._failures: list[tuple[str, BaseException]] = []
        self._partial: set[str] = set()
        """Fan-outs that failed: their completed elements are undone, the action stays
        failed (an action never undoes a failure: it records nothing of its own)."""
        self._group: anyio.abc.TaskGroup | None = None

    async def run(self, first: list[Event]) -> list[Event]:
        """Commit `first` with the first compensations' intents, compensate, and commit the
        run's end. Returns nothing: no phase follows."""
        journal, status = self._journal, self._status
        records = list(first)
        for name in status.in_state(A.RUNNING):
            # Started before a crash, never recorded: it did not complete, so nothing to undo.
            data = ActionFailed(
                error="interrupted while the saga compensated", code="interrupted", final=True
            )
            records.append(journal.record(K.ACTION_FAILED, name, data))
        for name in self._saga.topological_order():
            if status.actions[name].elements:
                records += interrupted(journal, name)
        targets = [a for a in self._saga.topological_order() if self._undoes(a)]
        self._partial = {a for a in targets if status.actions[a].state is A.FAILED}
        # Each target waits only for the nearest targets after it: they wait for the rest.
        for name, nearest in nearest_after(self._saga, targets).items():
            self._waiting[name] = set(nearest)
            for later in nearest:
                self._unblocks.setdefault(later, []).append(name)
        ready = [a for a in reversed(targets) if not self._waiting[a]]
        records += [r for name in ready for r in self._started(name)]
        await journal.commit(records)
        with anyio.CancelScope(shield=True):
            await self._undo_failed_children()
            async with anyio.create_task_group() as group:
                self._group = group
                for name in ready:
                    group.start_soon(self._compensate, name)
            self._group = None
            await self._end()
        return []

    async def _undo_failed_children(self) -> None:
        """Child sagas of failed `saga/` actions are undone too (`UndoesFailed`):
        the parent's log cannot say whether such a child did work."""
        for name in self._status.in_state(A.FAILED):
            action = self._runner.action(name)
            if isinstance(action, UndoesFailed):
                try:
                    await action.undo_failed(self._journal.run_id, name)
                except Exception as exc:
                    log.error("undoing a child saga failed", action=name, error=error_text(exc))
                    self._failures.append((name, exc))

    def _undoes(self, name: str) -> bool:
        """Whether `name` has something to undo: it completed (a fan-out that failed: some
        of its elements did) and it can be compensated."""
        status = self._status.actions[name]
        done = status.state in (A.SUCCEEDED, A.COMPENSATING) or (
            status.state is A.FAILED and bool(completed(status))
        )
        return done and self._runner.compensable(name)

    def _started(self, name: str) -> list[Event]:
        """The intent of compensating `name` (none for a failed fan-out's elements: each
        of them records its own)."""
        if name in self._partial:
            return []
        attempt = self._status.actions[name].compensation_attempts + 1
        data = CompensationStarted(attempt=attempt)
        return [self._journal.record(K.COMPENSATION_STARTED, name, data)]

    async def _compensate(self, name: str) -> None:
        structlog.contextvars.bind_contextvars(run_id=self._journal.run_id, action=name)
        journal = self._journal
        if self._saga.actions[name].for_each is None:
            undone, tx = await self._undo(name)
        else:
            undone, tx = await self._undo_elements(name), None
        if not undone:
            return
        records = [] if name in self._partial else [journal.record(K.ACTION_COMPENSATED, name)]
        unblocked: list[str] = []
        waiters = self._unblocks.get(name, [])
        for other in sorted(waiters, key=self._index.__getitem__, reverse=True):
            waiting = self._waiting[other]
            waiting.discard(name)
            if not waiting:
                unblocked.append(other)
                records += self._started(other)
        await journal.commit(records, tx)
        assert self._group is not None
        for other in unblocked:
            self._group.start_soon(self._compensate, other)

    async def _undo_elements(self, name: str) -> bool:
        """Undo a fan-out's completed elements, latest first; False when one failed for good."""
        exc = await compensate_elements(self._journal, self._runner, name)
        if exc is None:
            return True
        if name not in self._partial:
            data = CompensationFailed(
                error=error_text(exc),
                code=error_code(exc),
                attempt=self._status.actions[name].compensation_attempts,
                final=True,
            )
            await self._journal.commit([self._journal.record(K.COMPENSATION_FAILED, name, data)])
        log.error("compensation failed", error=error_text(exc))
        self._failures.append((name, exc))
        return False

    async def _undo(self, name: str) -> tuple[bool, StoreTransaction | None]:
        """Attempts at undoing `name` until one succeeds (True, and its transaction to
        commit with the record) or it failed for good (False)."""
        journal, runner = self._journal, self._runner
        retries = runner.retries(name)
        while True:
            ctx = runner.context(name, compensating=True)
            try:
                await runner.compensate(name, ctx)
            except anyio.get_cancelled_exc_class():
                await rollback(ctx)
                raise
            except Exception as exc:
                await rollback(ctx)
                final = not retries.allows(exc)
                data = CompensationFailed(
                    error=error_text(exc),
                    code=error_code(exc),
                    attempt=self._status.actions[name].compensation_attempts,
                    final=final,
                )
                await journal.commit([journal.record(K.COMPENSATION_FAILED, name, data)])
                if final:
                    log.error("compensation failed", error=error_text(exc))
                    self._failures.append((name, exc))
                    return False, None
                await retries.wait(retries.delay())
                await journal.commit(self._started(name))
                continue
            return True, ctx.take_transaction()

    async def _end(self) -> None:
        journal, status = self._journal, self._status
        if self._failures:
            name, exc = self._failures[0]
            error = f"compensation of {name} failed: {error_text(exc)}"
            await journal.commit([journal.stuck(name, exc, error)])
            return
        await self._finalizer.run()
        records = [journal.record(K.ACTION_SKIPPED, a) for a in status.in_state(A.PENDING)]
        cancelled = status.reason is StopReason.CANCEL
        failed = status.failed_action
        bad_input = bool(failed and status.code in _INPUT_CODES) or status.code in _INPUT_CODES
        finished = RunFinished(
            state=RunState.CANCELLED if cancelled else RunState.COMPENSATED,
            error=status.error,
            code=status.code,
            failed_action=failed,
            bad_input=bad_input,
        )
        records.append(journal.record(K.RUN_FINISHED, None, finished))
        await journal.commit(records)
