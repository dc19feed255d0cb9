"""A run as its log tells it (`Engine.status`, `sagactl status`), read with the store only.

Nothing here imports the scheduler or networkx: the pinned definition gives the actions'
order (stdlib, `model.CompiledSaga`), the log their states, so `sagactl status` reads a
run without loading what runs one.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

from .errors import RunNotFound
from .model import CompiledSaga
from .results import RunResult, result_of
from .states import fold
from .store.reads import RunReads
from .store.records import RunRecord


def child_run_id(parent_run_id: str, action: str) -> str:
    """The child's run id: derived, so every attempt and every recovery finds the same one."""
    return f"{parent_run_id}/{action}"


def pinned_saga(record: RunRecord) -> CompiledSaga:
    """The run's pinned definition (never the file as it is now)."""
    return CompiledSaga.from_dict(record.definition)


async def run_status(
    store: RunReads, run_id: str, pinned: Callable[[RunRecord], CompiledSaga] = pinned_saga
) -> RunResult:
    """The run with each action's state and last progress, and the runs of its child
    sagas (`pinned` gives a record's compiled definition: the engine keeps them)."""
    record = await store.get_run(run_id)
    saga = pinned(record)
    status = fold(run_id, saga.topological_order(), await store.read_log(run_id))
    result = result_of(record, status, await store.progress(run_id))
    children: dict[str, RunResult] = {}
    for name, spec in saga.actions.items():
        if spec.child is not None and status.actions[name].attempts:
            with contextlib.suppress(RunNotFound):  # a crash before the child was created
                children[name] = await run_status(store, child_run_id(run_id, name), pinned)
    return dataclasses.replace(result, children=children) if children else result
