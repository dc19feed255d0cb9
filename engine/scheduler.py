"""The anyio scheduler: drives one run forward, and compensates it when it fails.

Every action whose dependencies succeeded starts at once, up to `max_parallel` per run
(and the process-wide limiter). An action's intent (`action_started`) is logged before it
runs, in the same commit as the completion that made it ready, so a chain costs one
commit per action. When an action fails for good, running siblings are cancelled and
every completed compensable action is compensated, dependents before their dependencies,
independent ones concurrently, shielded from cancellation. After a pivot succeeded,
failures only retry forward; a run that cannot go on ends `stuck`.

The in-memory `RunStatus` moves with every record as it is created (through the state
machine), and the records reach the store in that same order; events go to subscribers
only once their commit is durable.
"""

from __future__ import annotations

import heapq
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import anyio
import jsonschema
import structlog

from . import events as ev
from . import json_schema
from .action import JSON, Action, Outputs
from .clock import Clock, SystemClock
from .context import RunContext
from .deps import Dependencies
from .errors import FatalError, InputError, RetryableError
from .events import Event, EventHandler
from .faults import FaultPlan, inject
from .json_values import NotJson, check_json
from .model import CompiledSaga
from .ordering import nearest_after
from .quickschema import surely_valid
from .references import Scope, resolve
from .states import ActionState, ActionStatus, RunState, RunStatus
from .store.base import Claim, Store, StoreTransaction

A = ActionState
log = structlog.get_logger("sagactl")


@dataclass(slots=True)
class Options:
    """How runs are executed; shared by every run of an `Engine`."""

    clock: Clock = field(default_factory=SystemClock)
    random: Callable[[], float] = random.random
    """Jitter source, in [0, 1)."""
    max_parallel: int = 32
    """Actions of one run executing at once."""
    limiter: anyio.CapacityLimiter | None = None
    """Actions executing at once in this process, over all runs."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    deps: Dependencies = field(default_factory=Dependencies)
    on_event: Sequence[EventHandler] = ()
    progress_interval: float = 1.0
    """At most one progress-only write per run per this many seconds."""
    exit: Callable[[int], NoReturn] = os._exit
    """What a `crash` fault calls."""


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, InputError) else text


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "code", None) or type(exc).__name__)


def retryable(action: Action, exc: BaseException) -> bool:
    """InputError and FatalError never; RetryableError always; else the action's list."""
    if isinstance(exc, InputError | FatalError):
        return False
    if isinstance(exc, RetryableError):
        return True
    return isinstance(exc, action.retryable)


class Execution:
    """One run driven by this process, under its claim, from whatever state its log is in."""

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
    ) -> None:
        self.store = store
        self.claim = claim
        self.saga = saga
        self.inputs = dict(inputs)
        self.actions = actions
        """`uses` -> Action."""
        self.status = status
        self.options = options
        self._checkpoints = dict(checkpoints)
        self._index = {name: i for i, name in enumerate(saga.topological_order())}
        self._heap: list[tuple[int, str]] = []
        self._running: set[str] = set()
        self._stop: str | None = "cancel" if cancel_requested else None
        self._failures: dict[str, BaseException] = {}
        self._stuck: list[tuple[str, BaseException]] = []
        self._group: anyio.abc.TaskGroup | None = None
        self._progress: dict[str, JSON] = {}
        self._flushing = False
        self._phase = "idle"
        self._comp_waiting: dict[str, set[str]] = {}
        self._comp_unblocks: dict[str, list[str]] = {}  # action -> those waiting for it
        self._comp_failures: list[tuple[str, BaseException]] = []
        self._comp_limiter = anyio.CapacityLimiter(max(1, options.max_parallel))
        self._opened: list[str] | None = None
        self._finished = False

    # -- public ------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.claim.run_id

    def request_cancel(self) -> None:
        """Compensate the run (a no-op once compensating, or after a pivot succeeded)."""
        if self._stop is not None or self._phase == "compensating":
            return
        if self._forward_only():
            log.warning("cancel ignored: a pivot succeeded", run_id=self.run_id)
            return
        self._stop = "cancel"
        if self._phase == "forward" and self._group is not None:
            self._group.cancel_scope.cancel()

    def opening(self) -> list[Event]:
        """For a run not yet in the store: the records that start it (`run_started` and
        the first intents), applied here, to be committed with the run's creation
        (`Store.create_run(records=...)`); then set `claim` and call `run`."""
        self._phase = "forward"
        first = [self._record(ev.RUN_STARTED, None, state="running")]
        self._push_initial()
        records, names = self._dispatch()
        self._opened = names
        return first + records

    def emit_all(self, events: Sequence[Event]) -> None:
        for event in events:
            self._emit(event)

    async def run(self) -> RunStatus:
        """Drive the run until it is finished or stuck; returns its final status."""
        with structlog.contextvars.bound_contextvars(run_id=self.run_id):
            return await self._run()

    async def _run(self) -> RunStatus:
        if self._opened is not None:
            await self._forward_all([])
            return self.status
        state = self.status.state
        if state is None or state in (
            RunState.SUCCEEDED,
            RunState.COMPENSATED,
            RunState.CANCELLED,
            RunState.ABANDONED,
        ):
            return self.status
        if state is RunState.QUEUED and self._stop == "cancel":
            records = [self._record(ev.ACTION_SKIPPED, a) for a in self._pending()]
            records.append(self._record(ev.RUN_FINISHED, None, state="cancelled"))
            await self._commit(records)
            return self.status
        compensating = state is RunState.COMPENSATING or (
            state is RunState.STUCK and self.status.reason is not None
        )
        owner = {"owner": self.claim.owner}
        if compensating:
            first = [self._record(ev.RUN_RESUMED, None, state="compensating", **owner)]
            await self._compensate_all(first)
        elif state is RunState.QUEUED:
            await self._forward_all([self._record(ev.RUN_STARTED, None, state="running")])
        else:
            await self._forward_all([self._record(ev.RUN_RESUMED, None, state="running", **owner)])
        return self.status

    # -- records, commits, events ------------------------------------------------------

    def _record(self, kind: str, action: str | None, **data: Any) -> Event:
        """A record, applied to the in-memory status at once (checking the transition)."""
        record = Event(self.run_id, kind, action, data, self.options.clock.now())
        self.status.apply(record)
        return record

    async def _commit(self, records: list[Event], tx: StoreTransaction | None = None) -> None:
        progress, self._progress = self._progress, {}
        with anyio.CancelScope(shield=True):
            if tx is not None:
                numbered = await tx.commit(records, progress=progress or None)
            else:
                numbered = await self.store.append(self.claim, records, progress=progress or None)
        for event in numbered:
            self._emit(event)

    def _emit(self, event: Event) -> None:
        for handler in self.options.on_event:
            try:
                handler(event)
            except Exception:
                log.exception("event handler failed", handler=repr(handler), kind=event.kind)

    def _on_progress(
        self, action: str, fraction: float | None, message: str, n: int | None
    ) -> None:
        data = {"fraction": fraction, "message": message, "bytes": n}
        self._progress[action] = data
        self._emit(Event(self.run_id, ev.ACTION_PROGRESS, action, data, self.options.clock.now()))
        if not self._flushing and self._group is not None:
            self._flushing = True
            self._group.start_soon(self._flush_progress)

    async def _flush_progress(self) -> None:
        # Progress rides along with the next commit; this only covers long quiet stretches.
        try:
            while True:
                await anyio.sleep(self.options.progress_interval)
                if self._progress:
                    await self._commit([])
        finally:
            self._flushing = False

    def _on_checkpoint(self, action: str, data: JSON) -> None:
        self._checkpoints[action] = data

    def _context(self, name: str, attempt: int, *, compensating: bool = False) -> RunContext:
        return RunContext(
            store=self.store,
            claim=self.claim,
            action=name,
            attempt=attempt,
            deps=self.options.deps,
            last_checkpoint=self._checkpoints.get(name),
            on_progress=self._on_progress,
            on_checkpoint=self._on_checkpoint,
            compensating=compensating,
        )

    # -- the forward phase -------------------------------------------------------------

    def _forward_only(self) -> bool:
        return any(self.status.actions[p].state is A.SUCCEEDED for p in self.saga.pivots())

    def _pending(self) -> list[str]:
        return [
            a for a in self.saga.topological_order() if self.status.actions[a].state is A.PENDING
        ]

    def _deps_done(self, name: str) -> bool:
        return all(
            self.status.actions[d].state is A.SUCCEEDED for d in self.saga.dependencies(name)
        )

    def _push_if_ready(self, name: str) -> None:
        if name not in self._running and self._deps_done(name):
            heapq.heappush(self._heap, (self._index[name], name))

    def _dispatch(self) -> tuple[list[Event], list[str]]:
        """Intents for as many ready actions as free slots allow, lowest topological first."""
        records: list[Event] = []
        names: list[str] = []
        if self._stop is not None:
            return records, names
        while self._heap and len(self._running) < self.options.max_parallel:
            _, name = heapq.heappop(self._heap)
            status = self.status.actions[name]
            if name in self._running or status.state not in (A.PENDING, A.RUNNING, A.FAILED):
                continue
            self._running.add(name)
            records.append(self._record(ev.ACTION_STARTED, name, attempt=status.attempts + 1))
            names.append(name)
        return records, names

    def _push_initial(self) -> None:
        for name in self.saga.topological_order():
            if self.status.actions[name].state in (A.PENDING, A.RUNNING, A.FAILED):
                self._push_if_ready(name)

    async def _forward_all(self, first: list[Event]) -> None:
        if self._opened is not None:
            names = self._opened  # their intents were committed with the run's creation
        else:
            self._phase = "forward"
            self._push_initial()
            records, names = self._dispatch()
            await self._commit(first + records)
        if names:
            async with anyio.create_task_group() as group:
                self._group = group
                for name in names:
                    group.start_soon(self._forward, name)
            self._group = None
        await self._after_forward()

    def _idle_check(self) -> None:
        if not self._running and self._group is not None:
            self._group.cancel_scope.cancel()  # only the progress flusher is left

    async def _forward(self, name: str) -> None:
        # The task goes on with the first action its completion made ready (a chain needs
        # one task, not one per action); only further ready actions get tasks of their own.
        structlog.contextvars.bind_contextvars(run_id=self.run_id)
        next_name: str | None = name
        while next_name is not None:
            next_name = await self._forward_one(next_name)

    async def _forward_one(self, name: str) -> str | None:
        """Run `name` to its end; returns a ready action this task should run next."""
        structlog.contextvars.bind_contextvars(action=name)
        spec = self.saga.actions[name]
        action = self.actions[spec.uses]
        session_attempt = 1
        while True:
            ctx = self._context(name, self.status.actions[name].attempts)
            try:
                outputs = await self._attempt(name, action, ctx)
            except anyio.get_cancelled_exc_class():
                # A sibling failed and this attempt was cancelled: its open transaction
                # holds the database's write lock (SQLite) until rolled back.
                await _rollback(ctx)
                raise
            except Exception as exc:
                tx = ctx.take_transaction()
                if tx is not None:
                    with anyio.CancelScope(shield=True):
                        await tx.rollback()
                if (
                    session_attempt < spec.retry.attempts
                    and retryable(action, exc)
                    and (self._stop is None or self._forward_only())
                ):
                    delay = spec.retry.delay(session_attempt, self.options.random())
                    # info: the failure is an event (live view, results); a warning would repeat it
                    log.info("action failed, retrying", error=_error_text(exc), delay=delay)
                    attempt = self.status.actions[name].attempts
                    failed = self._failed(name, exc, final=False)
                    retry = self._record(ev.ACTION_RETRYING, name, attempt=attempt + 1, delay=delay)
                    await self._commit([failed, retry])
                    await self.options.clock.sleep(delay)
                    session_attempt += 1
                    await self._commit([self._record(ev.ACTION_STARTED, name, attempt=attempt + 1)])
                    continue
                await self._final_failure(name, exc)
                return None
            tx = ctx.take_transaction()
            self._running.discard(name)
            records = [self._record(ev.ACTION_SUCCEEDED, name, outputs=outputs)]
            for dependent in sorted(self.saga.dependents(name), key=self._index.__getitem__):
                if self.status.actions[dependent].state is A.PENDING:
                    self._push_if_ready(dependent)
            more, names = self._dispatch()
            records += more
            if self._all_succeeded():
                # The last completion also finishes the run: one commit, not two.
                records.append(self._record(ev.RUN_FINISHED, None, state="succeeded"))
                self._finished = True
            await self._commit(records, tx)
            if names:
                self._spawn(names[1:])
                return names[0]
            self._idle_check()
            return None

    def _all_succeeded(self) -> bool:
        return (
            self._stop is None
            and not self._running
            and not self._stuck
            and all(s.state is A.SUCCEEDED for s in self.status.actions.values())
        )

    def _spawn(self, names: list[str]) -> None:
        assert self._group is not None
        for name in names:
            self._group.start_soon(self._forward, name)

    def _failed(self, name: str, exc: BaseException, *, final: bool) -> Event:
        return self._record(
            ev.ACTION_FAILED,
            name,
            error=_error_text(exc),
            code=_code(exc),
            attempt=self.status.actions[name].attempts,
            final=final,
            bad_input=isinstance(exc, InputError),
        )

    async def _final_failure(self, name: str, exc: Exception) -> None:
        log.info("action failed", error=_error_text(exc))
        self._running.discard(name)
        if self._forward_only():
            # Nothing is compensated after a pivot: the others go on as far as they can.
            self._stuck.append((name, exc))
            records = [self._failed(name, exc, final=True)]
            more, names = self._dispatch()
            await self._commit(records + more)
            self._spawn(names)
            self._idle_check()
            return
        self._failures[name] = exc
        if self._stop is None:
            self._stop = "failure"
        assert self._group is not None
        self._group.cancel_scope.cancel()

    async def _attempt(self, name: str, action: Action, ctx: RunContext) -> Outputs:
        spec = self.saga.actions[name]
        faults = self.options.faults
        if faults:  # none outside fault-injection tests: skip the per-action scan
            await inject(faults.at(name, "before"), self.options.clock, self.options.exit)
        inputs = self._inputs(name)
        self._validate(action, "input", inputs, name)
        limiter = self.options.limiter
        if limiter is not None:
            try:
                limiter.acquire_nowait()  # a free slot needs no trip through the event loop
            except anyio.WouldBlock:
                await limiter.acquire()
        try:
            if spec.timeout is None:
                outputs = await action.execute(ctx, inputs)
            else:
                with anyio.fail_after(spec.timeout):
                    outputs = await action.execute(ctx, inputs)
        except TimeoutError:
            raise TimeoutError(f"timed out after {spec.timeout:g}s") from None
        finally:
            if limiter is not None:
                limiter.release()
        if not isinstance(outputs, Mapping):
            raise FatalError(f"action {name} returned {type(outputs).__name__}, not a mapping")
        outputs = dict(outputs)
        self._validate(action, "output", outputs, name)
        try:
            check_json(outputs, "outputs")
        except NotJson as exc:
            raise FatalError(f"action {name} returned outputs that are not JSON: {exc}") from None
        if faults:
            await inject(faults.at(name, "after"), self.options.clock, self.options.exit)
        return outputs

    def _inputs(self, name: str) -> dict[str, Any]:
        scope = Scope(self.run_id, self.saga.name, self.inputs, _Outputs(self.status.actions))
        resolved = resolve(self.saga.actions[name].with_, scope)
        assert isinstance(resolved, dict)
        return resolved

    def _validate(self, action: Action, what: str, value: Mapping[str, Any], name: str) -> None:
        schema = action.input_schema if what == "input" else action.output_schema
        if surely_valid(schema, value):
            return  # the common simple schemas, without building jsonschema's iterator
        validator = _validator(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        message = f"action {name}: {what} {where}: {error.message}"
        raise InputError(message) if what == "input" else FatalError(message)

    async def _after_forward(self) -> None:
        if self._finished:
            return
        if self._stop is not None:
            records: list[Event] = []
            for name, exc in self._failures.items():
                records.append(self._failed(name, exc, final=True))
            note = "cancelled" if self._stop == "cancel" else "cancelled: a sibling failed"
            for name in self.status.in_state(A.RUNNING):
                records.append(
                    self._record(ev.ACTION_FAILED, name, error=note, code="cancelled", final=True)
                )
            self._running.clear()
            first = next(iter(self._failures.items()), None)
            error = {
                "error": _error_text(first[1]) if first else "cancelled by an operator",
                "code": _code(first[1]) if first else "cancelled",
                "failed_action": first[0] if first else None,
                "bad_input": bool(first and isinstance(first[1], InputError)),
            }
            if self._forward_only():
                records.append(self._record(ev.RUN_STUCK, None, state="stuck", **error))
                await self._commit(records)
                return
            records.append(
                self._record(
                    ev.RUN_COMPENSATING, None, state="compensating", reason=self._stop, **error
                )
            )
            await self._compensate_all(records)
        elif self._stuck:
            name, exc = self._stuck[0]
            await self._end_stuck(
                name, exc, f"{name}: {_error_text(exc)}", bad_input=isinstance(exc, InputError)
            )
        elif all(s.state is A.SUCCEEDED for s in self.status.actions.values()):
            await self._commit([self._record(ev.RUN_FINISHED, None, state="succeeded")])
        else:
            await self._commit(
                [self._record(ev.RUN_STUCK, None, state="stuck", error="the run cannot go on")]
            )

    # -- compensation ------------------------------------------------------------------

    def _compensable(self, name: str) -> bool:
        spec = self.saga.actions[name]
        return spec.compensable and self.actions[spec.uses].compensable()

    async def _compensate_all(self, first: list[Event]) -> None:
        self._phase = "compensating"
        records = list(first)
        for name in self.status.in_state(A.RUNNING):
            # Started before a crash, never recorded: it did not complete, so nothing to undo.
            records.append(
                self._record(
                    ev.ACTION_FAILED,
                    name,
                    error="interrupted while the saga compensated",
                    code="interrupted",
                    final=True,
                )
            )
        targets = [
            a
            for a in self.saga.topological_order()
            if self.status.actions[a].state in (A.SUCCEEDED, A.COMPENSATING)
            and self._compensable(a)
        ]
        # Each target waits only for the nearest targets after it: they wait for the rest.
        for name, nearest in nearest_after(self.saga, targets).items():
            self._comp_waiting[name] = set(nearest)
            for later in nearest:
                self._comp_unblocks.setdefault(later, []).append(name)
        ready = [a for a in reversed(targets) if not self._comp_waiting[a]]
        for name in ready:
            records.append(self._comp_started(name))
        await self._commit(records)
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                self._group = group
                for name in ready:
                    group.start_soon(self._compensate, name)
            self._group = None
            await self._after_compensation()

    def _comp_started(self, name: str) -> Event:
        attempt = self.status.actions[name].compensation_attempts + 1
        return self._record(ev.COMPENSATION_STARTED, name, attempt=attempt)

    async def _compensate(self, name: str) -> None:
        structlog.contextvars.bind_contextvars(run_id=self.run_id, action=name)
        spec = self.saga.actions[name]
        action = self.actions[spec.uses]
        session_attempt = 1
        while True:
            status = self.status.actions[name]
            ctx = self._context(name, status.compensation_attempts, compensating=True)
            try:
                async with self._comp_limiter:
                    inputs = self._inputs(name)
                    with anyio.fail_after(spec.timeout):
                        await action.compensate(ctx, inputs, dict(status.outputs or {}))
            except anyio.get_cancelled_exc_class():
                await _rollback(ctx)
                raise
            except Exception as exc:
                tx = ctx.take_transaction()
                if tx is not None:
                    await tx.rollback()
                final = not (session_attempt < spec.retry.attempts and retryable(action, exc))
                failed = self._record(
                    ev.COMPENSATION_FAILED,
                    name,
                    error=_error_text(exc),
                    code=_code(exc),
                    attempt=status.compensation_attempts,
                    final=final,
                )
                await self._commit([failed])
                if final:
                    log.error("compensation failed", error=_error_text(exc))
                    self._comp_failures.append((name, exc))
                    return
                await self.options.clock.sleep(
                    spec.retry.delay(session_attempt, self.options.random())
                )
                session_attempt += 1
                await self._commit([self._comp_started(name)])
                continue
            tx = ctx.take_transaction()
            records = [self._record(ev.ACTION_COMPENSATED, name)]
            unblocked: list[str] = []
            waiters = self._comp_unblocks.get(name, [])
            for other in sorted(waiters, key=self._index.__getitem__, reverse=True):
                waiting = self._comp_waiting[other]
                waiting.discard(name)
                if not waiting:
                    unblocked.append(other)
                    records.append(self._comp_started(other))
            await self._commit(records, tx)
            assert self._group is not None
            for other in unblocked:
                self._group.start_soon(self._compensate, other)
            return

    async def _end_stuck(self, name: str, exc: BaseException, error: str, **extra: JSON) -> None:
        """Record the run `stuck` on `name`'s failure: it waits for an operator."""
        await self._commit(
            [
                self._record(
                    ev.RUN_STUCK,
                    None,
                    state="stuck",
                    error=error,
                    code=_code(exc),
                    failed_action=name,
                    **extra,
                )
            ]
        )

    async def _after_compensation(self) -> None:
        status = self.status
        if self._comp_failures:
            name, exc = self._comp_failures[0]
            await self._end_stuck(name, exc, f"compensation of {name} failed: {_error_text(exc)}")
            return
        records = [self._record(ev.ACTION_SKIPPED, a) for a in self._pending()]
        final = "cancelled" if status.reason == "cancel" else "compensated"
        failed = status.failed_action
        bad_input = bool(failed and status.code in _INPUT_CODES) or status.code in _INPUT_CODES
        records.append(
            self._record(
                ev.RUN_FINISHED,
                None,
                state=final,
                error=status.error,
                code=status.code,
                failed_action=failed,
                bad_input=bad_input,
            )
        )
        await self._commit(records)


class _Outputs(Mapping[str, Mapping[str, Any]]):
    """`RunStatus.outputs()` as a view: resolving one action's inputs looks up a few
    outputs, without copying every completed action's into a new dict first."""

    __slots__ = ("_actions",)

    def __init__(self, actions: Mapping[str, ActionStatus]) -> None:
        self._actions = actions

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        outputs = self._actions[name].outputs
        if outputs is None:
            raise KeyError(name)
        return outputs

    def __iter__(self) -> Iterator[str]:
        return (name for name, s in self._actions.items() if s.outputs is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    """One validator per schema object, for the life of the process (the schema is kept
    referenced so its id stays its own)."""
    found = _VALIDATORS.get(id(schema))
    if found is None or found[0] is not schema:
        found = _VALIDATORS[id(schema)] = (schema, json_schema.validator(schema))
    return found[1]


_INPUT_CODES = frozenset({InputError.code, "definition_error", "run_not_found"})


async def _rollback(ctx: RunContext) -> None:
    """Roll back the attempt's transaction, if it opened one, even while being cancelled."""
    tx = ctx.take_transaction()
    if tx is not None:
        with anyio.CancelScope(shield=True):
            await tx.rollback()
