"""An execution inside its segment span, when tracing is on (`Options.tracing`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..states import FINISHED, RunStatus
from ..tracing import RunTracing
from .attempts import AttemptRunner

if TYPE_CHECKING:
    from .execution import Execution


async def traced(tracing: RunTracing, execution: Execution, runner: AttemptRunner) -> RunStatus:
    """Drive `execution` in a segment span that its attempts' spans are children of; once
    the run is over, record the run's own span too."""
    status = execution.status
    entry = None if status.state is None else str(status.state)
    segment = tracing.segment(execution.run_id, execution.saga.name, entry)
    runner.segment = segment
    try:
        final = await execution.drive()
    except BaseException as exc:
        segment.end(None if status.state is None else str(status.state), exc)
        raise
    finally:
        runner.segment = None
    segment.end(None if final.state is None else str(final.state))
    if final.state in FINISHED and final.finished is not None:
        ended = final.finished
        started = final.started if final.started is not None else ended
        tracing.finished(execution.run_id, execution.saga.name, str(final.state), started, ended)
    return final
