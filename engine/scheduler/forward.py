"""The forward phase: runs a `running` run's actions as their dependencies complete.

Every ready action starts at once, up to `max_parallel` (the frontier). Its intent is
logged before it runs, in the same commit as the completion that made it ready, so a
chain costs one commit per action; a task goes on with the first action its completion
made ready, and only further ones get tasks of their own (the spare task first: one whose
chain ended while others ran waits for such an action). When an action fails for good,
running siblings are cancelled and the phase hands the run to compensation; after a
pivot succeeded, failures only retry forward and a run that cannot go on ends `stuck`.

New kinds of DAG node (a fan-out, a child saga) land in `_run_node`. Conditions are the
frontier's: a ready action whose `if:` is false is recorded skipped instead of started
(`sagactl.engine.scheduler.conditions`). An action waiting for a signal (`Parked`) leaves
the phase without a failure; when nothing else can run, the run is parked `waiting`.
"""

from __future__ import annotations

import anyio
import anyio.abc
import structlog

from ..action import Outputs
from ..errors import InputError
from ..event_payloads import (
    ActionFailed,
    ActionRetrying,
    ActionStarted,
    ActionSucceeded,
    RunCompensating,
    RunFinished,
    RunPaused,
    RunStuck,
    RunWaiting,
    SignalWait,
)
from ..events import Event, EventKind
from ..signals import Parked
from ..states import DONE_FORWARD, ActionState, RunState, StopReason
from ..store.base import StoreTransaction
from ..wake import Wake
from .attempts import AttemptRunner, RetryBudget, rollback
from .fanout import BadElementInput, FanOut, FanOutFailed
from .finalize import Finalizer
from .frontier import Frontier
from .journal import Journal, error_code, error_text
from .log_context import ACTION

A, K = ActionState, EventKind
# Members read per record or per action, as module names (why: see `engine/states.py`).
_STARTED, _SUCCEEDED = K.ACTION_STARTED, K.ACTION_SUCCEEDED
log = structlog.get_logger("sagactl")


class ForwardPhase:
    """Drives a run forward until it succeeds, gets stuck, or must compensate."""

    def __init__(
        self,
        journal: Journal,
        runner: AttemptRunner,
        frontier: Frontier,
        finalizer: Finalizer,
        *,
        stop: StopReason | None = None,
    ) -> None:
        self._journal = journal
        self._runner = runner
        self._specs = runner.saga.actions
        self._frontier = frontier
        self._finalizer = finalizer
        self._status = journal.status
        self.stop = stop
        """Why the run stops going forward (None: it goes on)."""
        self._failures: dict[str, BaseException] = {}
        """Actions that failed for good before a pivot: the run compensates."""
        self._stuck: list[tuple[str, BaseException]] = []
        """Actions that failed for good after a pivot: the run ends stuck."""
        self._parked: dict[str, Parked] = {}
        """Actions waiting for a signal: once nothing else runs, the run is parked."""
        self._group: anyio.abc.TaskGroup | None = None
        self._spare: _Spare | None = None
        """A task whose chain ended while other actions were in hand, waiting to run the
        next action made ready: spawning a task costs ten times waking one."""
        self._held: list[Event] = []
        """Records of a fan-out's failed elements, committed with the action's failure."""
        self.pausing = False
        """An operator paused the run: the actions in hand finish, nothing new starts."""

    def pivot_passed(self) -> bool:
        """A pivot succeeded: from now on the run only rolls forward."""
        actions = self._status.actions
        return any(actions[p].state is A.SUCCEEDED for p in self._runner.saga.pivots())

    def request_cancel(self) -> None:
        """Stop and compensate (ignored once stopping, or after a pivot succeeded)."""
        if self.stop is not None:
            return
        if self.pivot_passed():
            log.warning("cancel ignored: a pivot succeeded", run_id=self._journal.run_id)
            return
        self.stop = StopReason.CANCEL
        if self._group is not None:
            self._group.cancel_scope.cancel()

    def request_pause(self) -> None:
        """Start nothing new; the run is `paused` once the actions in hand are done."""
        self.pausing = True

    async def run(self, first: list[Event]) -> list[Event]:
        """Commit `first` with the intents of the ready actions, run them and whatever they
        make ready. Returns the records handing the run to compensation (not committed:
        the compensation phase commits them with its own first ones), else nothing: the
        run's end is committed here."""
        if not self._frontier.busy:  # (a run `open_run` started has its ready ones in hand)
            self._frontier.queue_ready()
        records = first + self._start()
        if records:
            await self._journal.commit(records)
        launch = self._frontier.in_hand()  # a new run's were logged with its creation
        if launch:
            async with anyio.create_task_group() as group:
                self._group = group
                self._spawn(launch[1:])
                # The first goes on in this task, inside the group's scope like the others
                # (a task fewer per run; a failure cancels the siblings the same way); the
                # action it sets for the log must not outlive it, as in a task of its own.
                token = ACTION.set(None)
                try:
                    await self._chain(launch[0])
                finally:
                    ACTION.reset(token)
            self._group = None
        return await self._end()

    # -- running nodes -----------------------------------------------------------------

    def _start(self) -> list[Event]:
        if self.stop is not None or self.pausing:
            return []
        return self._frontier.start(self._journal)

    def _spawn(self, names: list[str]) -> None:
        """Run each of `names` in a task of its own: the spare one first, if there is one."""
        assert self._group is not None
        for name in names:
            spare, self._spare = self._spare, None
            if spare is not None:
                spare.hand(name)
            else:
                # Named by its first action: anyio formats a name from the function else.
                self._group.start_soon(self._chain, name, name=name)

    async def _chain(self, name: str) -> None:
        # (`run_id` is bound already: a task starts with a copy of its spawner's context)
        # Each success is committed here, not in a coroutine of its own: after each commit
        # the task resumes through fewer frames.
        next_name: str | None = name
        while next_name is not None:
            done = await self._run_node(next_name)
            if done is None:
                next_name = await self._handed()
                continue
            outputs, tx = done
            records, started = self._succeeded(next_name, outputs)
            await self._journal.commit(records, tx)
            next_name = self._launch(started) or await self._handed()

    async def _handed(self) -> str | None:
        """The next action for a task whose chain ended: while others are in hand (their
        success may make one ready) it waits as the spare task, unless there is one; None:
        the task ends. Once nothing is in hand, nothing can be made ready: the spare task
        ends too."""
        frontier = self._frontier
        if frontier.busy and self._spare is None and self.stop is None and not self.pausing:
            spare = self._spare = _Spare()
            return await spare.wait()
        if not frontier.busy and self._spare is not None:
            spare, self._spare = self._spare, None
            spare.hand(None)
        return None

    async def _run_node(self, name: str) -> tuple[Outputs, StoreTransaction | None] | None:
        """Run one node to its end: its outputs and the transaction to commit with its
        success, or None when it did not succeed (failed for good, or parked). A node is an
        action or a fan-out (`for_each`); another kind of node is another branch here."""
        ACTION.set(name)
        conditions = self._frontier.conditions
        problem = conditions.problem(name) if conditions.any else None
        if problem is not None:  # its `if:` cannot be evaluated: bad input, never retried
            await self._failed_for_good(name, problem)
            return None
        if self._specs[name].for_each is not None:
            return await self._run_fan_out(name)
        return await self._run_action(name)

    def _launch(self, started: list[Event]) -> str | None:
        """Spawn tasks for all but the first action whose intent is among `started`; the
        first goes on in this task (returned)."""
        names = _launched(started)
        if not names:
            return None
        self._spawn(names[1:])
        return names[0]

    async def _run_action(self, name: str) -> tuple[Outputs, StoreTransaction | None] | None:
        """Attempts until one succeeds (its outputs, and the transaction to commit with its
        completion) or the action failed for good (None)."""
        journal, runner = self._journal, self._runner
        retries: RetryBudget | None = None  # made on the first failure: most never fail
        while True:
            ctx = runner.context(name)
            try:
                outputs = await runner.execute(name, ctx)
            except anyio.get_cancelled_exc_class():
                await rollback(ctx)  # a sibling failed and this attempt was cancelled
                raise
            except Parked as parked:
                await rollback(ctx)  # it stays started: the next wake runs it again
                self._frontier.drop(name)
                self._parked[name] = parked
                return None
            except Exception as exc:
                await rollback(ctx)
                if retries is None:
                    retries = runner.retries(name)
                if not (retries.allows(exc) and self._may_retry()):
                    await self._failed_for_good(name, exc)
                    return None
                if self.pausing:
                    # No new attempt while paused: `unpause` starts the next one.
                    self._frontier.drop(name)
                    await journal.commit([self._failed(name, exc, final=False)])
                    return None
                delay = retries.delay()
                # info: the failure is an event (live view, results); a warning would repeat it
                log.info("action failed, retrying", error=error_text(exc), delay=delay)
                attempt = self._status.actions[name].attempts + 1
                failed = self._failed(name, exc, final=False)
                retry = journal.record(
                    K.ACTION_RETRYING, name, ActionRetrying(attempt=attempt, delay=delay)
                )
                await journal.commit([failed, retry])
                await retries.wait(delay)
                started = journal.record(K.ACTION_STARTED, name, ActionStarted(attempt=attempt))
                await journal.commit([started])
                continue
            return outputs, ctx.take_transaction()

    async def _run_fan_out(self, name: str) -> tuple[Outputs, None] | None:
        """A `for_each` action: its elements' outputs, or None when one failed for good."""
        fan_out = FanOut(self._journal, self._runner, name, self._may_retry)
        try:
            return await fan_out.run(), None
        except (FanOutFailed, BadElementInput) as exc:
            self._held += exc.records
            await self._failed_for_good(name, exc)
        except InputError as exc:  # its array is not one
            await self._failed_for_good(name, exc)
        return None

    def _may_retry(self) -> bool:
        """A failed attempt may be retried: the run goes on (or only rolls forward)."""
        return self.stop is None or self.pivot_passed()

    def _succeeded(self, name: str, outputs: Outputs) -> tuple[list[Event], list[Event]]:
        """The records of `name`'s success, with the intents of what it made ready (also
        returned on their own) and, when it was the last, the run's end."""
        journal = self._journal
        succeeded: ActionSucceeded = {"outputs": outputs}  # (a literal: see `Frontier.start`)
        records = [journal.record(_SUCCEEDED, name, succeeded)]
        self._frontier.succeeded(name)
        started = self._start()
        records += started
        if self._all_succeeded() and not self._finalizer.pending():
            # The last completion also finishes the run: one commit, not two.
            records.append(
                journal.record(
                    K.RUN_FINISHED,
                    None,
                    RunFinished(state=RunState.SUCCEEDED, outputs=self._runner.saga_outputs()),
                )
            )
        return records, started

    def _all_succeeded(self) -> bool:
        return (
            self.stop is None
            and not self._frontier.busy
            and not self._stuck
            and all(s.state in DONE_FORWARD for s in self._status.actions.values())
        )

    def _failed(self, name: str, exc: BaseException, *, final: bool) -> Event:
        data = ActionFailed(
            error=error_text(exc),
            code=error_code(exc),
            attempt=self._status.actions[name].attempts,
            final=final,
            bad_input=isinstance(exc, InputError),
        )
        return self._journal.record(K.ACTION_FAILED, name, data)

    async def _failed_for_good(self, name: str, exc: Exception) -> None:
        log.info("action failed", error=error_text(exc))
        self._frontier.drop(name)
        if self.pivot_passed():
            # Nothing is compensated after a pivot: the others go on as far as they can.
            self._stuck.append((name, exc))
            records = [*self._take_held(), self._failed(name, exc, final=True)]
            started = self._start()
            await self._journal.commit(records + started)
            self._spawn(_launched(started))
            return
        self._failures[name] = exc
        if self.stop is None:
            self.stop = StopReason.FAILURE
        assert self._group is not None
        self._group.cancel_scope.cancel()

    def _take_held(self) -> list[Event]:
        held, self._held = self._held, []
        return held

    # -- the end of the phase ----------------------------------------------------------

    async def _end(self) -> list[Event]:
        journal, status = self._journal, self._status
        if status.state is not RunState.RUNNING:
            return []  # the last completion finished the run
        if self.stop is not None:
            return await self._stop()
        if self._stuck:
            name, exc = self._stuck[0]
            error = f"{name}: {error_text(exc)}"
            stuck = journal.stuck(name, exc, error, bad_input=isinstance(exc, InputError))
            await journal.commit([stuck])
        elif all(s.state in DONE_FORWARD for s in status.actions.values()):
            await self._finalizer.run()
            finished = RunFinished(state=RunState.SUCCEEDED, outputs=self._runner.saga_outputs())
            await journal.commit([journal.record(K.RUN_FINISHED, None, finished)])
        elif self.pausing:
            paused = RunPaused(state=RunState.PAUSED)
            await journal.commit([journal.record(K.RUN_PAUSED, None, paused)])
        elif self._parked:
            await journal.commit([journal.record(K.RUN_WAITING, None, self._waiting())])
        else:
            stuck_data = RunStuck(state=RunState.STUCK, error="the run cannot go on")
            await journal.commit([journal.record(K.RUN_STUCK, None, stuck_data)])
        return []

    def _waiting(self) -> RunWaiting:
        """The record parking the run: what it waits for, and when a timer wakes it."""
        waits = [
            SignalWait(action=name, signal=p.signal, deadline=p.deadline)
            for name, p in sorted(self._parked.items())
        ]
        deadlines = [p.deadline for p in self._parked.values() if p.deadline is not None]
        return RunWaiting(
            state=RunState.WAITING, waits=waits, wake_at=min(deadlines) if deadlines else None
        )

    async def _stop(self) -> list[Event]:
        """Record why the run stopped; hand it to compensation unless a pivot passed."""
        assert self.stop is not None
        journal = self._journal
        records = self._take_held()
        records += [self._failed(name, exc, final=True) for name, exc in self._failures.items()]
        note = "cancelled" if self.stop is StopReason.CANCEL else "cancelled: a sibling failed"
        for name in self._status.in_state(A.RUNNING):
            data = ActionFailed(error=note, code="cancelled", final=True)
            records.append(journal.record(K.ACTION_FAILED, name, data))
        self._frontier.clear()
        first = next(iter(self._failures.items()), None)
        error = error_text(first[1]) if first else "cancelled by an operator"
        code = error_code(first[1]) if first else "cancelled"
        failed_action = first[0] if first else None
        bad_input = bool(first and isinstance(first[1], InputError))
        if self.pivot_passed():
            stuck = RunStuck(
                state=RunState.STUCK,
                error=error,
                code=code,
                failed_action=failed_action,
                bad_input=bad_input,
            )
            records.append(journal.record(K.RUN_STUCK, None, stuck))
            await journal.commit(records)
            return []
        compensating = RunCompensating(
            state=RunState.COMPENSATING,
            reason=self.stop,
            error=error,
            code=code,
            failed_action=failed_action,
            bad_input=bad_input,
        )
        records.append(journal.record(K.RUN_COMPENSATING, None, compensating))
        return records


class _Spare:
    """A task waiting for the next action to run (None: to end)."""

    __slots__ = ("_name", "_wake")

    def __init__(self) -> None:
        self._wake = Wake.here()
        self._name: str | None = None

    def hand(self, name: str | None) -> None:
        self._name = name
        self._wake.set()

    async def wait(self) -> str | None:
        await self._wake.wait()
        return self._name


def _launched(records: list[Event]) -> list[str]:
    """The actions whose intents are among `records` (the others were skipped)."""
    return [r.action for r in records if r.kind is _STARTED and r.action is not None]
