"""`uses: saga/NAME` at run time: the child saga runs as a run of its own, as one action.

The child's run id is `PARENT/ACTION` (the action's idempotency key), so a parent resumed
after a crash finds the child it started and continues it instead of starting a second.
The child's definition comes from the parent's pin (`ActionSpec.child`), never from the
file as it is now. The child compensates itself when it fails (the action then fails, and
the parent compensates); when the parent compensates after the child succeeded, the
action's compensation moves the child run from `succeeded` to `compensating` and undoes
its completed actions in reverse order, so it ends `compensated`.
"""

from __future__ import annotations

from typing import Protocol

import anyio

from .action import Action, ActionContext, Inputs, Outputs
from .errors import FatalError, RunNotFound
from .event_payloads import RunCompensating
from .events import Event, EventKind
from .model import CompiledSaga
from .new_run import pin_new_run
from .providers import ActionProvider
from .results import RunResult
from .run_status import child_run_id as child_run_id
from .scheduler import Execution, Options, open_run
from .states import FINISHED, RunState, StopReason
from .store.base import Claim, ParentLink, RunBusy, RunExists, RunRecord, Store
from .task_groups import unwrap


class ParentEngine(Protocol):
    """What a child saga needs of the engine running its parent (`sagactl.engine.api.Engine`)."""

    @property
    def store(self) -> Store: ...

    @property
    def provider(self) -> ActionProvider: ...

    @property
    def options(self) -> Options: ...

    def actions_of(self, saga: CompiledSaga) -> dict[str, Action]: ...

    async def status(self, run_id: str) -> RunResult: ...

    async def prepare(
        self, record: RunRecord, claim: Claim, *, cancel: bool = False
    ) -> Execution: ...

    async def drive(self, record: RunRecord, execution: Execution) -> RunResult: ...

    async def release(self, claim: Claim) -> None: ...


_UNDONE = frozenset({RunState.COMPENSATED, RunState.CANCELLED})
_FORWARD = frozenset({RunState.QUEUED, RunState.RUNNING})
_BUSY_POLL = 0.2
"""Seconds between tries to claim a child another process is driving."""


class ChildFailed(FatalError):
    """The child saga did not succeed (it compensated itself, or is stuck)."""

    code = "child_failed"


class ChildSaga(Action):
    """The action behind `uses: saga/NAME`: runs, or undoes, one child run."""

    description = "Runs another saga as one action"

    def __init__(self, engine: ParentEngine, saga: CompiledSaga) -> None:
        self._engine = engine
        self._saga = saga

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        parent = ParentLink(ctx.run_id, ctx.action)
        result = await run_child(self._engine, self._saga, inputs, parent)
        if not result.ok:
            why = f": {result.error}" if result.error else ""
            raise ChildFailed(
                f"child saga {self._saga.name} (run {result.run_id}) {result.state}{why}"
            )
        return dict(result.outputs or {})

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        await compensate_child(self._engine, child_run_id(ctx.run_id, ctx.action))

    async def undo_failed(self, parent_run_id: str, action: str) -> None:
        """Make sure the child of an action that failed is undone: the action may have been
        cancelled (or its process died) after the child did work, even after it succeeded.
        The compensation phase calls this for every failed `saga/` action, each time it
        starts, so a crash half way only means it runs again."""
        run_id = child_run_id(parent_run_id, action)
        await compensate_child(self._engine, run_id, missing_ok=True)


async def run_child(
    engine: ParentEngine, saga: CompiledSaga, inputs: Inputs, parent: ParentLink
) -> RunResult:
    """Start the child run, or continue it (after a crash), or return it when finished."""
    run_id = child_run_id(parent.run_id, parent.action)
    new = pin_new_run(saga, inputs, engine.provider, run_id=run_id, parent=parent)
    opened = await open_run(
        engine.store, new, saga=saga, actions=engine.actions_of(saga), options=engine.options
    )
    if opened is not None:
        return await _drive_shielded(engine, *opened)
    record = await engine.store.get_run(run_id)
    if record.parent != parent:
        raise RunExists(f"run {run_id} exists and is not a child of {parent.run_id}")
    if record.state in FINISHED:
        return await engine.status(run_id)
    claim = await _claim(engine, run_id)
    if claim is None:
        return await engine.status(run_id)  # another process drove it to its end
    record = await engine.store.get_run(run_id)
    return await _drive_shielded(engine, record, await engine.prepare(record, claim))


async def compensate_child(engine: ParentEngine, run_id: str, *, missing_ok: bool = False) -> None:
    """Undo a child run: one that succeeded is compensated, one still going forward is
    cancelled (it compensates itself), one compensating goes on. ChildFailed unless it
    ends compensated or cancelled."""
    store = engine.store
    try:
        record = await store.get_run(run_id)
    except RunNotFound:
        if missing_ok:
            return  # the parent died before it created the child: nothing to undo
        raise
    if record.state in _UNDONE:
        return  # undone already (or it undid itself when it was stopped)
    if record.state is RunState.ABANDONED:
        raise ChildFailed(f"child run {run_id} was abandoned: it cannot be compensated")
    claim = await _claim(engine, run_id, settled=_UNDONE | {RunState.ABANDONED})
    if claim is None:
        return await compensate_child(engine, run_id)
    try:
        record = await store.get_run(run_id)
        if record.state is RunState.SUCCEEDED:
            moved = RunCompensating(
                state=RunState.COMPENSATING,
                reason=StopReason.PARENT,
                error=None,
                code=None,
                failed_action=None,
                bad_input=False,
            )
            await store.append(claim, [Event(run_id, EventKind.RUN_COMPENSATING, None, moved)])
            record = await store.get_run(run_id)
        execution = await engine.prepare(record, claim, cancel=record.state in _FORWARD)
    except BaseException:
        await engine.release(claim)
        raise
    result = await engine.drive(record, execution)
    if result.state not in _UNDONE:
        raise ChildFailed(f"child run {run_id} could not be compensated: {result.state}")


async def _claim(
    engine: ParentEngine, run_id: str, *, settled: frozenset[RunState] = FINISHED
) -> Claim | None:
    """The child's claim, waiting while another process drives it; None when it reached
    a `settled` state meanwhile."""
    while True:
        try:
            return await engine.store.claim(run_id)
        except RunBusy:
            await anyio.sleep(_BUSY_POLL)
        if (await engine.store.get_run(run_id)).state in settled:
            return None


async def _drive_shielded(
    engine: ParentEngine, record: RunRecord, execution: Execution
) -> RunResult:
    """Drive the child to its end. Cancelling the parent's action (a sibling failed, or its
    timeout) does not abandon the child half way: it asks the child to stop, and waits
    while the child compensates itself."""
    results: list[RunResult] = []
    done = anyio.Event()

    async def drive() -> None:
        with anyio.CancelScope(shield=True):
            results.append(await engine.drive(record, execution))
        done.set()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(drive)
            try:
                await done.wait()
            except anyio.get_cancelled_exc_class():
                execution.request_cancel()
                raise
    except BaseExceptionGroup as group_error:
        raise unwrap(group_error) from None
    return results[0]
