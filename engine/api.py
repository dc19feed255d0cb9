"""The Python API of the runtime: start, resume, cancel, abandon, inspect and prune runs.

`Engine` holds a store and an action provider; everything the CLI does goes through it.
`run_saga_async` is a one-call shortcut; `sync.py` has the same from synchronous code.

    async with Engine(db="sqlite:///tmp/log.db", actions={"demo.hello": Hello()}) as engine:
        result = await engine.run(saga, {"name": "world"})
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, NoReturn

import anyio
import anyio.abc
import structlog

from .action import JSON, Action
from .child_runs import ChildSaga
from .clock import Clock, SystemClock
from .deps import Dependencies
from .errors import InputError
from .event_payloads import RunFinished, RunForked, RunPaused, RunResumed
from .events import Event, EventHandler, EventKind
from .faults import FaultPlan
from .model import CompiledSaga
from .new_run import check_inputs as check_inputs
from .new_run import new_run_id as new_run_id
from .new_run import pin_new_run
from .operator import who
from .parking import due_now
from .providers import ActionProvider, as_provider
from .results import RunResult as RunResult
from .results import result_of
from .retention import check_not_pruned, pin_queries, prune_expired
from .run_status import run_status
from .scheduler import Execution, Options, open_run
from .signals import SignalRefused, check_signal
from .states import FINISHED, RELEASING, UNFINISHED, ActionState, RunState, fold
from .store import RunBusy, RunRecord, Store, open_store
from .store.base import Claim, ClaimLost, Loaded
from .task_groups import unwrap
from .tracing import RunTracing, tracing_configured

log = structlog.get_logger("sagactl")

ActionsArg = ActionProvider | Mapping[str, Action | Callable[[Dependencies], Action]] | None


class Engine:
    """Runs sagas against one store. Use it as an async context manager."""

    def __init__(
        self,
        db: str | os.PathLike[str] | Store | None = None,
        *,
        actions: ActionsArg = None,
        deps: Dependencies | None = None,
        on_event: EventHandler | Sequence[EventHandler] | None = None,
        faults: FaultPlan | str | None = None,
        clock: Clock | None = None,
        random_source: Callable[[], float] | None = None,
        max_parallel: int = 32,
        process_limit: int = 256,
        cancel_poll: float = 0.5,
        exit: Callable[[int], NoReturn] = os._exit,
        on_run: Sequence[Callable[[str, str], None]] = (),
        commit_on_loop: bool = False,
    ) -> None:
        """`on_run`: called with (run id, saga) whenever this engine takes a run to drive
        (how metrics label a run's events with its saga). `commit_on_loop`: an SQLite
        store opened from `db` commits on the event loop while its lock is free, not on its
        writer thread: less CPU per action and shorter chains, but each fsync blocks the
        loop; for a loop that serves only this engine (as `sync.with_engine`'s does)."""
        self._owns_store = not isinstance(db, Store)
        self.store: Store = (
            db if isinstance(db, Store) else open_store(db, commit_on_loop=commit_on_loop)
        )
        self.deps = deps or Dependencies()
        self._actions_arg = actions
        self._provider: ActionProvider | None = None
        handlers: Sequence[EventHandler]
        if on_event is None:
            handlers = ()
        elif callable(on_event):
            handlers = (on_event,)
        else:
            handlers = tuple(on_event)
        self.faults = faults if isinstance(faults, FaultPlan) else FaultPlan.parse(faults)
        self.options = Options(
            clock=clock or SystemClock(),
            random=random_source or random.random,
            max_parallel=max_parallel,
            faults=self.faults,
            deps=self.deps,
            on_event=handlers,
            exit=exit,
            on_run=tuple(on_run),
            tracing=_tracing_from_env(),
        )
        self._process_limit = process_limit
        self._cancel_poll = cancel_poll
        self._live: dict[str, Execution] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._sagas: dict[str, CompiledSaga] = {}
        self.on_lost: Callable[[str], None] | None = None
        """Called with the id of a run whose lease the heartbeat found lost."""

    @property
    def provider(self) -> ActionProvider:
        if self._provider is None:
            self._provider = as_provider(self._actions_arg, self.deps)
        return self._provider

    async def __aenter__(self) -> Engine:
        if self._owns_store:
            await self.store.open()
        self.options.limiter = anyio.CapacityLimiter(self._process_limit)
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._watch_cancels)
        if self.store.heartbeat_interval is not None:
            self._group.start_soon(self._heartbeat, self.store.heartbeat_interval)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._group is not None:
                self._group.cancel_scope.cancel()
                await self._group.__aexit__(None, None, None)
                self._group = None
        finally:
            if self._owns_store:
                await self.store.close()

    async def _watch_cancels(self) -> None:
        # One query per interval for every run this engine drives, however many.
        while True:
            await anyio.sleep(self._cancel_poll)
            if not self._live:
                continue
            try:
                flagged = await self.store.cancel_requests(list(self._live))
            except Exception:
                log.exception("cannot poll cancel requests")
                continue
            for run_id in flagged:
                execution = self._live.get(run_id)
                if execution is not None:
                    execution.request_cancel()
            try:
                pausing = await self.store.pause_requests(list(self._live))
            except Exception:
                log.exception("cannot poll pause requests")
                continue
            for run_id in pausing:
                execution = self._live.get(run_id)
                if execution is not None:
                    execution.request_pause()

    async def _heartbeat(self, interval: float) -> None:
        # Leases (PostgreSQL) expire unless renewed: renew every run this store holds, at a
        # fixed rate (a slow renewal does not push the next one back).
        due = anyio.current_time()
        while True:
            due = max(due + interval, anyio.current_time())
            await anyio.sleep_until(due)
            try:
                lost = await self.store.heartbeat()
            except Exception:
                log.exception("cannot renew leases")
                continue
            for run_id in lost:
                log.warning("lease lost: another worker took the run over", run_id=run_id)
                execution = self._live.get(run_id)
                if execution is not None:
                    execution.superseded = True
                if self.on_lost is not None:
                    self.on_lost(run_id)

    # -- starting and resuming ---------------------------------------------------------

    async def start(
        self,
        saga: CompiledSaga,
        inputs: Mapping[str, JSON] | None = None,
        *,
        run_id: str | None = None,
        node: str | None = None,
    ) -> str:
        """Create the run `queued` (for a worker or a later `resume`); returns its id.
        With `node`, only a worker on that node claims it (its inputs live there)."""
        new = pin_new_run(saga, inputs, self.provider, run_id=run_id, node=node)
        if run_id is not None:
            await check_not_pruned(self.store, run_id)
        created = await self.store.create_run(new, claim=False)
        return created.run.run_id

    async def run(
        self,
        saga: CompiledSaga,
        inputs: Mapping[str, JSON] | None = None,
        *,
        run_id: str | None = None,
        forked: RunForked | None = None,
    ) -> RunResult:
        """Run the saga to its end (idempotent on `run_id`: a known run is resumed or,
        when finished, returned as it stands). `forked` links a fork to its source."""
        unknown = self.faults.unknown_actions(saga.actions)
        if unknown:
            raise InputError(f"--fault names {unknown[0]!r}, not an action of {saga.name}")
        new = pin_new_run(saga, inputs, self.provider, run_id=run_id)
        if run_id is not None:
            await check_not_pruned(self.store, run_id)
        opened = await open_run(
            self.store,
            new,
            saga=saga,
            actions=self.actions_of(saga),
            options=self.options,
            forked=forked,
        )
        if opened is None:  # the run existed: idempotent
            if (await self.store.get_run(new.run_id)).state is RunState.PAUSED:
                return await self.status(new.run_id)  # as it stands: `unpause` goes on
            return await self.resume(new.run_id)
        self._sagas.setdefault(saga.canonical_hash, saga)
        return await self.drive(*opened)

    async def resume(self, run_id: str) -> RunResult:
        """Continue a run from its pin: at once if its owner died; `RunBusy` if one lives."""
        record = await self.store.get_run(run_id)
        if RunState(record.state) in FINISHED:
            return await self.status(run_id)
        if record.state is RunState.PAUSED:
            raise InputError(f"run {run_id} is paused: continue it with unpause")
        claim = await self.store.claim(run_id)
        return await self._execute(claim)

    async def resume_all(self, *, include_stuck: bool = False) -> list[RunResult]:
        """Resume every unfinished run nobody live holds (stuck ones too when asked), and
        every waiting run a signal woke or whose timer ran out."""
        states = set(UNFINISHED) | ({RunState.STUCK} if include_stuck else set())
        orphans = await self.store.orphans([str(s) for s in states])
        orphans += [r for r in await self.store.due() if r not in orphans]
        results: dict[str, RunResult] = {}

        async def one(run_id: str) -> None:
            with contextlib.suppress(RunBusy):  # another process took it first
                results[run_id] = await self.resume(run_id)

        async with anyio.create_task_group() as group:
            for run_id in orphans:
                group.start_soon(one, run_id)
        return [results[r] for r in orphans if r in results]

    async def execute_claimed(self, claim: Claim) -> RunResult:
        """Drive a run a worker claimed (`claim_next`) by the normal recovery rules."""
        loaded = await self.store.load(claim.run_id)
        if RunState(loaded.record.state) in FINISHED:
            await self.release(claim)
            return await self.status(claim.run_id)
        execution = await self.prepare(loaded.record, claim, loaded=loaded)
        return await self.drive(loaded.record, execution)

    def _pinned(self, record: RunRecord) -> CompiledSaga:
        """The run's pinned definition (never the file as it is now), compiled once."""
        saga = self._sagas.get(record.definition_hash)
        if saga is None:
            saga = self._sagas[record.definition_hash] = CompiledSaga.from_dict(record.definition)
        return saga

    def actions_of(self, saga: CompiledSaga) -> dict[str, Action]:
        """`uses` -> the action, for every action of `saga` (a child saga's runs its
        pinned definition as a run of its own)."""
        provider = self.provider  # (a property: once per run, not once per action)
        return {
            spec.uses: provider.create(spec.uses)
            if spec.child is None
            else ChildSaga(self, spec.child)
            for spec in saga.actions.values()
        }

    async def _execute(
        self, claim: Claim, *, cancel: bool = False, note: Mapping[str, Any] | None = None
    ) -> RunResult:
        """Drive a run that exists, from its pin and its log read afresh under `claim`
        (one `load`); `note` goes into the record resuming it (an operator's retry or
        unpause)."""
        loaded = await self.store.load(claim.run_id)
        execution = await self.prepare(
            loaded.record, claim, cancel=cancel, note=note, loaded=loaded
        )
        return await self.drive(loaded.record, execution)

    async def prepare(
        self,
        record: RunRecord,
        claim: Claim,
        *,
        cancel: bool = False,
        note: Mapping[str, Any] | None = None,
        loaded: Loaded | None = None,
    ) -> Execution:
        """The execution of a run that exists, from its pin and its log, under `claim`
        (released when it cannot be built); `loaded`: the run's log, checkpoints and pause
        flag read with `record` after the claim (else read here, together)."""
        try:
            if loaded is None:
                loaded = await self.store.load(record.run_id)
            cancel = cancel or record.cancel_requested
            pause = not cancel and loaded.pause_requested
            saga = self._pinned(record)
            self._warn_version_drift(record)
            execution = Execution(
                store=self.store,
                claim=claim,
                saga=saga,
                inputs=record.inputs,
                actions=self.actions_of(saga),
                status=fold(record.run_id, saga.topological_order(), loaded.log),
                checkpoints=loaded.checkpoints,
                options=self.options,
                cancel_requested=cancel,
                pause_requested=pause,
                note=note,
            )
        except BaseException:
            await self.release(claim)
            raise
        return execution

    async def drive(self, record: RunRecord, execution: Execution) -> RunResult:
        claim = execution.claim
        self._live[record.run_id] = execution
        try:
            await execution.run()
        except BaseExceptionGroup as group:
            error = unwrap(group)
            if isinstance(error, Exception) and not isinstance(error, ClaimLost):
                await self.release(claim)
            raise error from None
        except ClaimLost:
            raise
        except Exception:
            await self.release(claim)
            raise
        finally:
            self._live.pop(record.run_id, None)
        if execution.status.state not in RELEASING:
            await self.release(claim)
        # The claim is given up by now: nobody holds the run any more (said to `result_of`:
        # a copy of the record without its owner costs ~65,000 instructions per run).
        result = result_of(record, execution.status, released=True)
        if result.state is RunState.WAITING and await due_now(
            self.store, result.run_id, result.waits
        ):
            # A signal came (or a timer ran out) while the run was being parked.
            return await self._wake(result.run_id) or result
        return result

    async def _wake(self, run_id: str) -> RunResult | None:
        """Wake a parked run: a worker takes it (PostgreSQL), else it is driven here;
        None when someone else drives it."""
        if await self.store.wake(run_id):
            return None
        with contextlib.suppress(RunBusy):
            return await self.resume(run_id)
        return None

    async def release(self, claim: Claim) -> None:
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(ClaimLost):
                await self.store.release(claim)

    def _warn_version_drift(self, record: RunRecord) -> None:
        for uses in sorted(record.plugin_versions):
            pinned = record.plugin_versions.get(uses)
            current = self.provider.version(uses)
            if pinned != current:
                log.warning(
                    "plugin version changed since the run started",
                    run_id=record.run_id,
                    uses=uses,
                    pinned=pinned,
                    current=current,
                )

    # -- operator actions --------------------------------------------------------------

    async def cancel(self, run_id: str) -> RunResult:
        """Compensate a running run. Its owner (here or in another process) notices the
        flag; a run nobody holds is compensated right here."""
        record = await self.store.get_run(run_id)
        state = RunState(record.state)
        if state in FINISHED:
            raise InputError(f"run {run_id} has already finished ({state}): nothing to cancel")
        if state is RunState.STUCK:
            raise InputError(f"run {run_id} is stuck: resume or abandon it")
        if state is RunState.PAUSED:
            await self._check_not_past_pivot(record)
        await self.store.request_cancel(run_id)
        live = self._live.get(run_id)
        if live is not None:
            live.request_cancel()
            return await self.status(run_id)
        try:
            claim = await self.store.claim(run_id)
        except RunBusy:
            return await self.status(run_id)  # its owner will compensate it
        return await self._execute(claim, cancel=True)

    async def signal(self, run_id: str, name: str, data: JSON = None) -> RunResult:
        """Deliver signal `name` with `data` to the run's `wait.signal`: checked against
        its schema, kept until consumed. A parked run is woken: a worker takes it
        (PostgreSQL), else it is driven here, as `resume` would. `SignalRefused` (bad
        input) when the run waits for no such signal, the data breaks its schema, the
        signal was sent before, or the run finished; nothing is stored then."""
        record = await self.store.get_run(run_id)
        state = RunState(record.state)
        if state in FINISHED:
            raise SignalRefused(f"run {run_id} has finished ({state}): it waits for no signal")
        check_signal(self._pinned(record), run_id, name, data)
        if not await self.store.send_signal(run_id, name, data):
            raise SignalRefused(f"run {run_id} was sent signal {name!r} before")
        if RunState((await self.store.get_run(run_id)).state) is RunState.WAITING:
            woken = await self._wake(run_id)
            if woken is not None:
                return woken
        return await self.status(run_id)

    async def abandon(self, run_id: str) -> RunResult:
        """Give up on an unfinished run (typically `stuck`): nothing more will run."""
        record = await self.store.get_run(run_id)
        if RunState(record.state) in FINISHED:
            raise InputError(
                f"run {run_id} has already finished ({record.state}): nothing to abandon"
            )
        claim = await self.store.claim(run_id)
        try:
            saga = CompiledSaga.from_dict(record.definition)
            status = fold(run_id, saga.topological_order(), await self.store.read_log(run_id))
            records = []
            for name, action in status.actions.items():
                if action.state is ActionState.PENDING:
                    records.append(Event(run_id, EventKind.ACTION_SKIPPED, name))
            abandoned = RunFinished(state=RunState.ABANDONED)
            records.append(Event(run_id, EventKind.RUN_FINISHED, None, abandoned))
            for r in records:
                status.apply(r)  # checks every move against the state machine
            await self.store.append(claim, records)
        finally:
            await self.release(claim)
        # A child saga's run is driven only by its parent: left unfinished, nothing would
        # ever end it (and a stuck one would keep alerting), so it is given up with it.
        unfinished = [str(s) for s in RunState if s not in FINISHED]
        for child in await self.store.list_runs(parent=run_id, states=unfinished):
            await self.abandon(child.run_id)
        return await self.status(run_id)

    async def _check_not_past_pivot(self, record: RunRecord) -> None:
        saga = self._pinned(record)
        status = fold(
            record.run_id, saga.topological_order(), await self.store.read_log(record.run_id)
        )
        passed = [p for p in saga.pivots() if status.actions[p].state is ActionState.SUCCEEDED]
        if passed:
            raise InputError(
                f"run {record.run_id} passed its pivot {passed[0]}: it only rolls forward"
                " (unpause it, or abandon it)"
            )

    async def retry(self, run_id: str) -> RunResult:
        """Continue a `stuck` run where it stood, after the operator fixed the cause: the
        same run id and idempotency keys, new attempts. Recorded with who asked."""
        record = await self.store.get_run(run_id)
        if record.state is not RunState.STUCK:
            raise InputError(
                f"run {run_id} is {record.state}, not stuck: only a stuck run is retried"
            )
        if run_id in await self.store.pause_requests([run_id]):
            await self.store.request_pause(run_id, False)  # a pause that came too late
        claim = await self.store.claim(run_id)
        note = {
            "operation": "retry",
            "by": who(),
            "from_state": "stuck",
            "stuck_error": record.error,
        }
        return await self._execute(claim, note=note)

    async def pause(self, run_id: str) -> RunResult:
        """Start nothing new in the run; it is `paused` once its running actions finished
        (by its owner, when a live one holds it: this returns before then)."""
        record = await self.store.get_run(run_id)
        state = RunState(record.state)
        if state is RunState.PAUSED:
            return await self.status(run_id)
        if state not in (RunState.QUEUED, RunState.RUNNING):
            raise InputError(f"run {run_id} is {state}: only a queued or running run is paused")
        await self.store.request_pause(run_id, True)
        live = self._live.get(run_id)
        if live is not None:
            live.request_pause()
            return await self.status(run_id)
        try:
            claim = await self.store.claim(run_id)
        except RunBusy:
            return await self.status(run_id)  # its owner pauses it
        try:
            record = await self.store.get_run(run_id)
            if record.state in (RunState.QUEUED, RunState.RUNNING):
                saga = self._pinned(record)
                status = fold(run_id, saga.topological_order(), await self.store.read_log(run_id))
                paused = Event(
                    run_id, EventKind.RUN_PAUSED, None, RunPaused(state=RunState.PAUSED, by=who())
                )
                status.apply(paused)  # checks the move against the state machine
                await self.store.append(claim, [paused])
        finally:
            await self.release(claim)
        return await self.status(run_id)

    async def unpause(self, run_id: str, *, drive: bool = True) -> RunResult:
        """Let a paused run go on: driven here (`drive`, as `resume` does), or marked
        runnable and left to a worker."""
        record = await self.store.get_run(run_id)
        if record.state is not RunState.PAUSED:
            raise InputError(f"run {run_id} is {record.state}, not paused")
        await self.store.request_pause(run_id, False)
        claim = await self.store.claim(run_id)
        note = {"operation": "unpause", "by": who(), "from_state": "paused"}
        if drive:
            return await self._execute(claim, note=note)
        try:
            record = await self.store.get_run(run_id)
            saga = self._pinned(record)
            status = fold(run_id, saga.topological_order(), await self.store.read_log(run_id))
            resumed = RunResumed(state=RunState.RUNNING, owner=claim.owner)
            resumed.update(note)  # type: ignore[typeddict-item]
            record_ = Event(run_id, EventKind.RUN_RESUMED, None, resumed)
            status.apply(record_)
            await self.store.append(claim, [record_])
        finally:
            await self.release(claim)  # NOTIFY on PostgreSQL: a worker takes it
        return await self.status(run_id)

    async def _fork(
        self, run_id: str, inputs: Mapping[str, JSON] | None
    ) -> tuple[CompiledSaga, dict[str, JSON], RunForked]:
        source = await self.store.get_run(run_id)
        saga = self._pinned(source)
        edits = dict(inputs or {})
        merged = check_inputs(saga, {**source.inputs, **edits})
        changed = sorted(
            k for k in edits if source.inputs.get(k) != merged[k] or k not in source.inputs
        )
        return saga, merged, RunForked(from_run=run_id, by=who(), changed=changed)

    async def fork(
        self,
        run_id: str,
        inputs: Mapping[str, JSON] | None = None,
        *,
        new_run_id: str | None = None,
    ) -> RunResult:
        """A new run of `run_id`'s pinned definition, with its inputs but those in `inputs`,
        linked to it in its log (`run_forked`); run to its end as `run` does."""
        saga, merged, forked = await self._fork(run_id, inputs)
        return await self.run(saga, merged, run_id=new_run_id, forked=forked)

    async def start_fork(
        self,
        run_id: str,
        inputs: Mapping[str, JSON] | None = None,
        *,
        new_run_id: str | None = None,
    ) -> str:
        """`fork`, created `queued` for a worker or a later `resume`; returns its id."""
        saga, merged, forked = await self._fork(run_id, inputs)
        new = pin_new_run(saga, merged, self.provider, run_id=new_run_id)
        created = await self.store.create_run(
            new, claim=True, records=[Event(new.run_id, EventKind.RUN_FORKED, None, forked)]
        )
        if created.claim is not None:
            await self.release(created.claim)
        return created.run.run_id

    async def prune(self, older_than: float, *, page: int = 500) -> int:
        """Delete runs finished more than `older_than` seconds ago, `page` per commit."""
        if not math.isfinite(older_than) or older_than < 0:
            raise InputError("the age to prune must be a number of seconds >= 0")
        cutoff = self.options.clock.now() - older_than
        return await self.store.prune(finished_before=cutoff, page=page, keep=pin_queries())

    async def prune_expired(self, *, page: int = 500) -> int:
        """Delete runs finished longer ago than their retention (the saga's, else
        `$SAGACTL_RETENTION`), `page` per commit."""
        return await prune_expired(self.store, page=page)

    # -- reading -----------------------------------------------------------------------

    async def status(self, run_id: str) -> RunResult:
        """The run as its log tells it, with each action's last progress."""
        return await run_status(self.store, run_id, self._pinned)

    async def list_runs(
        self, *, states: Sequence[str] | None = None, limit: int = 1000, parent: str | None = None
    ) -> list[RunRecord]:
        """Runs oldest first; with `parent`, the child saga runs that run started."""
        return await self.store.list_runs(states=states, limit=limit, parent=parent)

    async def log(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        await self.store.get_run(run_id)  # RunNotFound for an unknown id
        return await self.store.read_log(run_id, after_seq=after_seq)


async def run_saga_async(
    saga: CompiledSaga,
    inputs: Mapping[str, JSON] | None = None,
    *,
    db: str | os.PathLike[str] | Store | None = None,
    actions: ActionsArg = None,
    run_id: str | None = None,
    on_event: EventHandler | Sequence[EventHandler] | None = None,
    faults: FaultPlan | str | None = None,
    deps: Dependencies | None = None,
) -> RunResult:
    """Run a saga to its end with its own engine (see `Engine` for the options)."""
    async with Engine(db, actions=actions, on_event=on_event, faults=faults, deps=deps) as engine:
        return await engine.run(saga, inputs, run_id=run_id)


def _tracing_from_env() -> RunTracing | None:
    """The run tracing the OpenTelemetry variables configure; None, with OpenTelemetry left
    unimported (it costs start-up time), when they configure no exporter."""
    if not tracing_configured():
        return None
    from .otel import tracing_from_env

    return tracing_from_env()
