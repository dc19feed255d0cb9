"""The fan-out: a `for_each` action run once per element of its array.

Each element is a small action of its own: its intent (`element_started`) is logged before
it runs and its completion (`element_succeeded`, with the attempt's transaction) after,
with the next element's intent in the same commit, so an element costs one commit as a
chain's action does. Elements run at most `max_parallel` at once (the action's, else the
run's), each with the action's retry policy and its own idempotency key
(`run_id/action/index`). After a crash only the elements without a completion run again.
The action's outputs are `results`: each element's outputs, in order.

When an element fails for good, the others are cancelled and the action fails; the
compensation phase then undoes the completed elements, latest first (`compensate_elements`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import structlog

from ..action import Outputs
from ..errors import FatalError, InputError
from ..event_payloads import (
    ElementCompensated,
    ElementCompensationFailed,
    ElementCompensationStarted,
    ElementFailed,
    ElementStarted,
    ElementSucceeded,
)
from ..events import Event, EventKind
from ..fanout_schema import RESULTS
from ..states import ActionState, ActionStatus
from .attempts import AttemptRunner, rollback
from .journal import Journal, error_code, error_text

A, K = ActionState, EventKind
log = structlog.get_logger("sagactl")


class FanOutFailed(FatalError):
    """An element failed for good; `records` (applied, not yet committed) say so, and
    that the elements still running were cancelled."""

    names_its_cause = True
    """Its message already names the element's error and its type (`error_text`)."""

    def __init__(self, message: str, code: str, records: list[Event]) -> None:
        super().__init__(message)
        self.code = code
        self.records = records


class BadElementInput(InputError):
    """An element's inputs were bad: the run failed on bad input (the CLI exits 2)."""

    def __init__(self, message: str, records: list[Event]) -> None:
        super().__init__(message)
        self.records = records


class FanOut:
    """Runs the elements of one `for_each` action to their end."""

    def __init__(
        self, journal: Journal, runner: AttemptRunner, name: str, may_retry: Callable[[], bool]
    ) -> None:
        self._journal = journal
        self._runner = runner
        self._name = name
        self._may_retry = may_retry
        """Whether a failed element may be retried (no: the run is stopping)."""
        self._status: ActionStatus = journal.status.actions[name]
        self._items: list[Any] = []
        self._todo: Iterator[int] = iter(())
        self._failure: tuple[int, Exception] | None = None
        self._group: anyio.abc.TaskGroup | None = None

    async def run(self) -> Outputs:
        """Every element's outputs as `results`; raises `FanOutFailed` (or
        `BadElementInput`) when one failed for good, or `InputError` when the array is
        not one."""
        self._items = items = self._runner.elements(self._name)
        done = self._status.elements or {}
        todo = [i for i in range(len(items)) if i not in done or done[i].state is not A.SUCCEEDED]
        if todo:
            spec = self._runner.saga.actions[self._name]
            width = min(len(todo), spec.max_parallel or self._runner.max_parallel)
            self._todo = iter(todo)
            first = [self._started(i) for i in _take(self._todo, width)]
            await self._journal.commit(first)
            async with anyio.create_task_group() as group:
                self._group = group
                for record in first:
                    group.start_soon(self._chain, int(record.data["index"]))
            self._group = None
            if self._failure is not None:
                raise self._failed(*self._failure)
        elements = self._status.elements or {}
        return {RESULTS: [elements[i].outputs for i in range(len(items))]}

    def _started(self, index: int) -> Event:
        data = ElementStarted(
            attempt=self._status.element(index).attempts + 1, index=index, of=len(self._items)
        )
        return self._journal.record(K.ELEMENT_STARTED, self._name, data)

    async def _chain(self, index: int | None) -> None:
        """Run element `index`, then the next element not yet taken, until none is left."""
        while index is not None:
            index = await self._element(index)

    async def _element(self, index: int) -> int | None:
        """Attempts of one element until one succeeds (committed with the next element's
        intent, whose index is returned) or it failed for good (the others are cancelled)."""
        journal, runner, name = self._journal, self._runner, self._name
        retries = runner.retries(name)
        element = (index, self._items[index])
        while True:
            ctx = runner.context(name, index=index)
            try:
                outputs = await runner.execute(name, ctx, element)
            except anyio.get_cancelled_exc_class():
                await rollback(ctx)
                raise
            except Exception as exc:
                await rollback(ctx)
                if not (retries.allows(exc) and self._may_retry()):
                    if self._failure is None:
                        self._failure = (index, exc)
                    assert self._group is not None
                    self._group.cancel_scope.cancel()
                    return None
                delay = retries.delay()
                log.info("element failed, retrying", index=index, error=error_text(exc))
                await journal.commit([self._element_failed(index, exc, final=False)])
                await retries.wait(delay)
                await journal.commit([self._started(index)])
                continue
            data = ElementSucceeded(outputs=outputs, index=index)
            records = [journal.record(K.ELEMENT_SUCCEEDED, name, data)]
            following = next(self._todo, None)
            if following is not None:
                records.append(self._started(following))
            await journal.commit(records, ctx.take_transaction())
            return following

    def _element_failed(self, index: int, exc: BaseException, *, final: bool) -> Event:
        data = ElementFailed(
            error=error_text(exc),
            code=error_code(exc),
            final=final,
            attempt=self._status.element(index).attempts,
            bad_input=isinstance(exc, InputError),
            index=index,
        )
        return self._journal.record(K.ELEMENT_FAILED, self._name, data)

    def _failed(self, index: int, exc: Exception) -> FanOutFailed | BadElementInput:
        """The action's failure: element `index` failed with `exc`, the running others
        were cancelled (their records go with the action's, in one commit)."""
        records = [self._element_failed(index, exc, final=True)]
        elements = self._status.elements or {}
        for other in sorted(elements):
            if elements[other].state is A.RUNNING:
                data = ElementFailed(
                    error="cancelled: another element failed",
                    code="cancelled",
                    final=True,
                    index=other,
                )
                records.append(self._journal.record(K.ELEMENT_FAILED, self._name, data))
        message = f"element {index}: {error_text(exc)}"
        if isinstance(exc, InputError):
            return BadElementInput(message, records)
        return FanOutFailed(message, error_code(exc), records)


def interrupted(journal: Journal, name: str) -> list[Event]:
    """Records ending the elements of `name` left running by a crash or a cancel: they did
    not complete, so there is nothing of theirs to undo."""
    elements = journal.status.actions[name].elements or {}
    return [
        journal.record(
            K.ELEMENT_FAILED,
            name,
            ElementFailed(error="interrupted", code="interrupted", final=True, index=index),
        )
        for index in sorted(elements)
        if elements[index].state is A.RUNNING
    ]


def completed(status: ActionStatus) -> list[int]:
    """The elements to undo, latest first: those that succeeded (or began compensating)."""
    elements = status.elements or {}
    done = (A.SUCCEEDED, A.COMPENSATING)
    return [i for i in sorted(elements, reverse=True) if elements[i].state in done]


async def compensate_elements(
    journal: Journal, runner: AttemptRunner, name: str
) -> Exception | None:
    """Undo the completed elements of `name`, latest first, each with the action's retry
    policy; the failure that stopped it (its records committed), else None."""
    status = journal.status.actions[name]
    indexes = completed(status)
    items = runner.elements(name) if indexes else []
    for index in indexes:
        failure = await _compensate_element(journal, runner, name, (index, items[index]))
        if failure is not None:
            return failure
    return None


async def _compensate_element(
    journal: Journal, runner: AttemptRunner, name: str, element: tuple[int, Any]
) -> Exception | None:
    index = element[0]
    status = journal.status.actions[name].element(index)
    retries = runner.retries(name)
    while True:
        data = ElementCompensationStarted(attempt=status.compensation_attempts + 1, index=index)
        await journal.commit([journal.record(K.ELEMENT_COMPENSATION_STARTED, name, data)])
        ctx = runner.context(name, compensating=True, index=index)
        try:
            await runner.compensate(name, ctx, element)
        except anyio.get_cancelled_exc_class():
            await rollback(ctx)
            raise
        except Exception as exc:
            await rollback(ctx)
            final = not retries.allows(exc)
            failed = ElementCompensationFailed(
                error=error_text(exc),
                code=error_code(exc),
                attempt=status.compensation_attempts,
                final=final,
                index=index,
            )
            await journal.commit([journal.record(K.ELEMENT_COMPENSATION_FAILED, name, failed)])
            if final:
                return exc
            await retries.wait(retries.delay())
            continue
        tx = ctx.take_transaction()
        done = ElementCompensated(index=index)
        await journal.commit([journal.record(K.ELEMENT_COMPENSATED, name, done)], tx)
        return None


def _take(iterator: Iterator[int], n: int) -> list[int]:
    return [index for _, index in zip(range(n), iterator, strict=False)]
