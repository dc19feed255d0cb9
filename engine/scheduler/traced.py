"""An execution inside its segment span, when tracing is on (`Options.tracing`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..events import Event, EventKind
from ..model import CompiledSaga
from ..states import FINISHED, RunStatus
from ..store.base import Claim, ClaimLost, Store
from ..tracing import RunTracing
from .attempts import AttemptRunner

OPENINGS = frozenset({EventKind.RUN_STARTED, EventKind.RUN_RESUMED, EventKind.RUN_COMPENSATING})
"""The kinds of record that open a process's part of a run (with its `segment` number)."""


class Execution(Protocol):
    """What a traced execution offers (`execution.Execution`, which imports this)."""

    status: RunStatus
    saga: CompiledSaga
    claim: Claim
    superseded: bool

    @property
    def run_id(self) -> str: ...

    @property
    def store(self) -> Store: ...

    async def drive(self) -> RunStatus: ...


async def traced(tracing: RunTracing, execution: Execution, runner: AttemptRunner) -> RunStatus:
    """Drive `execution` in a segment span that its attempts' spans are children of; once
    the run is over, record the run's own span too. A run taken over from a lost process
    first gets that process's segment span, rebuilt from the log."""
    status, claim, saga = execution.status, execution.claim, execution.saga.name
    if claim.taken_over:
        await _export_lost(tracing, execution.store, claim, saga)
    entry = None if status.state is None else str(status.state)
    segment = tracing.segment(execution.run_id, saga, entry, claim.fence)
    runner.segment = segment
    try:
        final = await execution.drive()
    except BaseException as exc:
        # A claim lost to a taker: the taker exports this segment, rebuilt from the log
        # (a second span with its id would be a duplicate).
        if not (execution.superseded or _claim_lost(exc)):
            segment.end(None if status.state is None else str(status.state), exc)
        raise
    finally:
        runner.segment = None
    segment.end(None if final.state is None else str(final.state))
    if final.state in FINISHED and final.finished is not None:
        ended = final.finished
        started = final.started if final.started is not None else ended
        tracing.finished(execution.run_id, saga, str(final.state), started, ended)
    return final


async def _export_lost(tracing: RunTracing, store: Store, claim: Claim, saga: str) -> None:
    """The span of the segment of the claim before `claim` (`fence - 1`), whose process is
    gone: never exported, since spans are sent when they end. Nothing when that claim
    drove no segment (it opened none in the log)."""
    lost = lost_segment(await store.read_log(claim.run_id), claim.fence - 1)
    if lost is not None:
        tracing.lost(claim.run_id, saga, claim.fence - 1, *lost)


def _claim_lost(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(ClaimLost) is not None
    return isinstance(exc, ClaimLost)


def lost_segment(records: Sequence[Event], number: int) -> tuple[float, float] | None:
    """(start, end) of segment `number` in a run's log: from the record opening it to the
    log's last record (the lost process wrote nothing after it); None without one."""
    for i in range(len(records) - 1, -1, -1):
        record = records[i]
        if record.kind in OPENINGS and record.data.get("segment") == number:
            return record.at, records[-1].at
    return None
