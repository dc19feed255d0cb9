"""Operator actions on every run a filter matches (`sagactl cancel --filter ...`).

The matches are walked page by page (`run_filter.matches`); each page's runs are acted on
a few at a time, and only counters are kept, so 10,000 runs cost what one page costs.
A run the operation does not apply to (cancelling a finished run, resuming one a live
process holds) is counted as refused with its reason, and the others go on.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from .api import Engine, RunResult
from .errors import InputError, SagaError
from .run_filter import RunFilter, matches

Operation = Callable[[Engine, str], Awaitable[RunResult]]

OPERATIONS: dict[str, Operation] = {
    "cancel": lambda engine, run_id: engine.cancel(run_id),
    "resume": lambda engine, run_id: engine.resume(run_id),
    "retry": lambda engine, run_id: engine.retry(run_id),
    "pause": lambda engine, run_id: engine.pause(run_id),
    "abandon": lambda engine, run_id: engine.abandon(run_id),
    "unpause": lambda engine, run_id: engine.unpause(run_id, drive=not _to_workers(engine)),
}
"""The operations a filter may drive, by their command's name."""


def _to_workers(engine: Engine) -> bool:
    """Where an unpaused run goes on by default: to the workers on PostgreSQL, else here."""
    return engine.store.dialect == "postgresql"


def unpausing(drive: bool) -> Operation:
    """`unpause` driving each run here (`drive`) or leaving it to a worker."""
    return lambda engine, run_id: engine.unpause(run_id, drive=drive)


KEEP_REFUSALS = 10
"""Refusals kept word for word (the rest are only counted)."""


@dataclass(slots=True)
class BulkReport:
    """What a bulk operation did: only counters and a few messages, whatever the count."""

    states: Counter[str] = field(default_factory=Counter)
    """The runs acted on, by the state each was left in."""
    refused: int = 0
    refusals: list[str] = field(default_factory=list)
    """The first `KEEP_REFUSALS` reasons, `run: reason`."""

    @property
    def acted(self) -> int:
        return sum(self.states.values())


async def act_on_matches(
    engine: Engine,
    operation: str,
    flt: RunFilter,
    *,
    now: float | None = None,
    concurrency: int = 8,
    on_result: Callable[[str, str], None] | None = None,
    act: Operation | None = None,
) -> BulkReport:
    """Apply `operation` to every run matching `flt` as of `now` (default: this instant);
    `on_result(run_id, state or 'refused: reason')` hears of each. `act`: how, when not
    the operation's default (`unpausing(drive)`)."""
    act = OPERATIONS[operation] if act is None else act
    report = BulkReport()
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(run_id: str) -> None:
        async with limiter:
            try:
                result = await act(engine, run_id)
            except SagaError as exc:  # InputError included: this run is not one it applies to
                report.refused += 1
                if len(report.refusals) < KEEP_REFUSALS:
                    report.refusals.append(f"{run_id}: {exc}")
                if on_result is not None:
                    on_result(run_id, f"refused: {exc}")
                return
        report.states[str(result.state)] += 1
        if on_result is not None:
            on_result(run_id, str(result.state))

    async for page in matches(engine.store, flt, now=time.time() if now is None else now):
        async with anyio.create_task_group() as group:
            for run in page:
                group.start_soon(one, run.run_id)
    return report


async def bulk(
    engine: Engine,
    operation: str,
    flt: RunFilter | str,
    *,
    on_result: Callable[[str, str], None] | None = None,
) -> BulkReport:
    """`operation` (cancel, resume, retry, pause, abandon, unpause) on every run `flt` matches now,
    page by page. InputError: a bad filter or operation (the server's entry point)."""
    if operation not in OPERATIONS:
        raise InputError(f"no bulk operation {operation!r} (one of: {', '.join(OPERATIONS)})")
    parsed = RunFilter.parse(flt) if isinstance(flt, str) else flt
    return await act_on_matches(engine, operation, parsed, on_result=on_result)
