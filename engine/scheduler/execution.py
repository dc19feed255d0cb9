"""An execution: one run driven by this process, from whatever state its log is in.

The run's state, as its log tells it (`RunState`, the state machine of
`sagactl.engine.states`), says what happens next. An execution first records the move
that takes the run from that state into a phase (`run_started`, `run_resumed`, or the
end of a queued run cancelled before it started), then hands the run to the phase its
state names: `running` to the forward phase, `compensating` to the compensation phase.
Each phase ends by moving the run on; the execution stops at a state that has no phase
(finished, or stuck: it waits for an operator).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from ..action import JSON, Action
from ..event_payloads import (
    RunCompensating,
    RunCreated,
    RunFinished,
    RunForked,
    RunPaused,
    RunResumed,
    RunStarted,
)
from ..events import Event, EventKind
from ..model import CompiledSaga
from ..parking import wait_turn
from ..states import ActionState, RunState, RunStatus, StopReason, fold
from ..store.base import Claim, NewRun, RunRecord, Store
from .attempts import AttemptRunner
from .compensation import CompensationPhase
from .conditions import Conditions
from .finalize import Finalizer
from .forward import ForwardPhase
from .frontier import Frontier
from .journal import Journal, Recorder
from .log_context import RUN_ID
from .options import Options
from .progress import ProgressFlusher
from .traced import traced

R, K = RunState, EventKind


class Execution:
    """One run under this process's claim: `await execution.run()` drives it to its end."""

    def __init__(
        self,
        *,
        store: Store,
        claim: Claim,
        saga: CompiledSaga,
        inputs: Mapping[str, JSON],
        actions: Mapping[str, Action],
        status: RunStatus,
        checkpoints: Mapping[str, JSON],
        options: Options,
        cancel_requested: bool = False,
        pause_requested: bool = False,
        frontier: Frontier | None = None,
        note: Mapping[str, Any] | None = None,
    ) -> None:
        """`status` is the run folded from its log; `actions` maps `uses` to the action.
        `frontier` carries the actions `open_run` started with the run's creation. `note`
        goes into the record that resumes the run (who retried or unpaused it)."""
        self.claim = claim
        self.superseded = False
        """Another process took the run over while this one still drove it (the heartbeat
        found the lease gone): that process exports this one's trace segment."""
        self._note = dict(note or {})
        self.status = status
        self.journal = Journal(
            status, options.clock, store=store, claim=claim, handlers=options.on_event
        )
        self._flusher = ProgressFlusher(self.journal, options.progress_interval)
        self._keyed = saga.concurrency is not None
        runner = AttemptRunner(
            store=store,
            claim=claim,
            saga=saga,
            inputs=inputs,
            actions=actions,
            status=status,
            checkpoints=checkpoints,
            options=options,
            on_progress=self._flusher.report,
        )
        for hook in options.on_run:
            hook(claim.run_id, saga.name)
        self._runner = runner
        self._tracing = options.tracing
        self.saga = saga
        self._opened = frontier is not None
        self._frontier = frontier or Frontier(
            saga, status, options.max_parallel, Conditions(saga, status, inputs)
        )
        finalizer = Finalizer(self.journal, runner)
        self._forward = ForwardPhase(
            self.journal,
            runner,
            self._frontier,
            finalizer,
            stop=StopReason.CANCEL if cancel_requested else None,
        )
        if pause_requested:
            self._forward.request_pause()
        self._phases: Mapping[RunState, ForwardPhase | CompensationPhase] = {
            R.RUNNING: self._forward,
            R.COMPENSATING: CompensationPhase(self.journal, runner, finalizer),
        }

    @property
    def run_id(self) -> str:
        return self.claim.run_id

    @property
    def store(self) -> Store:
        return self.journal.store

    def request_cancel(self) -> None:
        """Compensate the run (a no-op once compensating, or after a pivot succeeded)."""
        if self.status.state is not R.COMPENSATING:
            self._forward.request_cancel()

    def request_pause(self) -> None:
        """Start nothing new; `paused` once the actions in hand are done (a no-op while
        compensating: an undo is never left half done)."""
        if self.status.state in (R.QUEUED, R.RUNNING) and not self._forward.pausing:
            self._forward.request_pause()
            running = self.status.in_state(ActionState.RUNNING)
            self.journal.emit(Event(self.run_id, K.RUN_PAUSING, None, {"running": running}))

    async def run(self) -> RunStatus:
        """Drive the run until it is finished or stuck; returns its final status."""
        tracing = self._tracing
        if tracing is None:
            return await self.drive()
        return await traced(tracing, self, self._runner)

    async def drive(self) -> RunStatus:
        """`run` without tracing."""
        token = RUN_ID.set(self.run_id)  # (for the log lines of the run's tasks)
        try:
            async with anyio.create_task_group() as background:
                self._flusher.attach(background)
                if self.status.state is R.QUEUED and self._keyed:
                    await wait_turn(
                        self.journal.store, self.run_id, self.journal.emit, self._stopping
                    )
                records = self._entry()
                while (phase := self._phase()) is not None:
                    before = self.status.state
                    records = await phase.run(records)
                    assert self.status.state is not before, f"{phase} left the run {before}"
                if records:
                    await self.journal.commit(records)
                self._flusher.attach(None)
                if self._flusher.flushing:  # (a cancel costs a repr of this task, in anyio)
                    background.cancel_scope.cancel()
        finally:
            RUN_ID.reset(token)
        return self.status

    def _stopping(self) -> bool:
        return self._forward.stop is not None

    def _phase(self) -> ForwardPhase | CompensationPhase | None:
        """The phase the run's state names; None: nothing runs on."""
        state = self.status.state
        return None if state is None else self._phases.get(state)

    def _entry(self) -> list[Event]:
        """The records that take the run from the state its log left it in into a phase
        (nothing for a run that is finished, or that this process just started)."""
        status, journal = self.status, self.journal
        state = status.state
        segment = self.claim.fence  # names this process's trace segment (`tracing`)
        resumed = RunResumed(state=R.RUNNING, owner=self.claim.owner, segment=segment)
        resumed.update(self._note)  # type: ignore[typeddict-item]
        if state is R.PAUSED:
            return self._leave_pause()
        if self._forward.pausing and state in (R.QUEUED, R.RUNNING):
            # Flagged while nobody held it: paused before anything starts.
            return [journal.record(K.RUN_PAUSED, None, RunPaused(state=R.PAUSED))]
        if state is R.QUEUED:
            if self._forward.stop is StopReason.CANCEL:  # cancelled before it started
                pending = status.in_state(ActionState.PENDING)
                records = [journal.record(K.ACTION_SKIPPED, a) for a in pending]
                cancelled = RunFinished(state=R.CANCELLED)
                return [*records, journal.record(K.RUN_FINISHED, None, cancelled)]
            started = RunStarted(state=R.RUNNING, segment=segment)
            return [journal.record(K.RUN_STARTED, None, started)]
        if state is R.COMPENSATING or (state is R.STUCK and status.reason is not None):
            resumed["state"] = R.COMPENSATING
            return [journal.record(K.RUN_RESUMED, None, resumed)]
        if state is R.RUNNING and self._opened:
            return []  # started by `open_run`: its intents were logged with its creation
        if state in (R.RUNNING, R.STUCK, R.WAITING):
            return [journal.record(K.RUN_RESUMED, None, resumed)]
        return []

    def _leave_pause(self) -> list[Event]:
        """A paused run compensates when cancelled, else goes on (unpaused); with the pause
        flag still set it stays as it is."""
        journal = self.journal
        if self._forward.stop is StopReason.CANCEL:
            compensating = RunCompensating(
                state=R.COMPENSATING,
                reason=StopReason.CANCEL,
                error="cancelled by an operator",
                code="cancelled",
                failed_action=None,
                bad_input=False,
                segment=self.claim.fence,
            )
            return [journal.record(K.RUN_COMPENSATING, None, compensating)]
        if self._forward.pausing:
            return []
        resumed = RunResumed(state=R.RUNNING, owner=self.claim.owner, segment=self.claim.fence)
        resumed.update(self._note)  # type: ignore[typeddict-item]
        return [journal.record(K.RUN_RESUMED, None, resumed)]


async def open_run(
    store: Store,
    new: NewRun,
    *,
    saga: CompiledSaga,
    actions: Mapping[str, Action],
    options: Options,
    forked: RunForked | None = None,
) -> tuple[RunRecord, Execution] | None:
    """Create `new`, claimed by this process from its first instant, with `run_started`
    and the first actions' intents in the same commit; its execution, ready to `run`.
    None when a run with that id already existed (it is left untouched). `forked`: the
    run it was made from, recorded first."""
    created_data = RunCreated(state=R.QUEUED, saga=new.saga, definition_hash=new.definition_hash)
    created_event = Event(new.run_id, K.RUN_CREATED, None, created_data, seq=1)
    status = fold(new.run_id, saga.topological_order(), [created_event])
    recorder = Recorder(status, options.clock)
    frontier = Frontier(saga, status, options.max_parallel, Conditions(saga, status, new.inputs))
    opening = [recorder.record(K.RUN_FORKED, None, forked)] if forked is not None else []
    if saga.concurrency is None:  # else it starts once its turn on its key came
        frontier.queue_ready()
        # A run created claimed holds fence 1: its first trace segment.
        started = RunStarted(state=R.RUNNING, segment=1)
        opening.append(recorder.record(K.RUN_STARTED, None, started))
        opening += frontier.start(recorder)
    created = await store.create_run(new, claim=True, records=opening)
    if created.claim is None:
        return None
    execution = Execution(
        store=store,
        claim=created.claim,
        saga=saga,
        inputs=new.inputs,
        actions=actions,
        status=status,
        checkpoints={},
        options=options,
        frontier=frontier,
    )
    execution.journal.emit_all(created.records[1:])
    return created.run, execution
