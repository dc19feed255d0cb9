"""The attempt runner: one attempt of one action, forward or compensating, and its retries.

An attempt is: the `before` fault, inputs resolved from the run and checked against the
action's input schema, a slot of the process-wide limiter, the action's timeout, outputs
checked against its output schema and for JSON, the `after` fault. What happens around
an attempt (the records, when to stop retrying because the run stops) is the phases'.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import anyio
from jsonschema import ValidationError

from ..action import JSON, Action, Outputs
from ..context import ProgressSink, RunContext
from ..errors import FatalError, InputError, RetryableError
from ..faults import inject
from ..json_values import NotJson, check_json
from ..model import CompiledSaga, RetryPolicy
from ..references import Scope, resolve
from ..saga_outputs import resolve_outputs
from ..states import ActionStatus, RunStatus
from ..store.base import Claim, Store
from ..tracing import NOOP_TRACER, Segment
from .options import Options
from .schema_checks import check_for


def retryable(action: Action, exc: BaseException) -> bool:
    """InputError and FatalError never; RetryableError always; else the action's list."""
    if isinstance(exc, InputError | FatalError):
        return False
    if isinstance(exc, RetryableError):
        return True
    return isinstance(exc, action.retryable)


async def rollback(ctx: RunContext) -> None:
    """Roll back the attempt's transaction, if it opened one, even while being cancelled
    (an open transaction holds the database's write lock on SQLite until it ends)."""
    tx = ctx.take_transaction()
    if tx is not None:
        with anyio.CancelScope(shield=True):
            await tx.rollback()


class RetryBudget:
    """The attempts an action has left in this process, by its retry policy."""

    def __init__(self, policy: RetryPolicy, action: Action, options: Options) -> None:
        self._policy = policy
        self._action = action
        self._options = options
        self.used = 1

    def allows(self, exc: BaseException) -> bool:
        """Whether the failure `exc` is worth another attempt, and one is left."""
        return self.used < self._policy.attempts and retryable(self._action, exc)

    def delay(self) -> float:
        """Seconds to wait before the next attempt (backoff with jitter)."""
        return self._policy.delay(self.used, self._options.random())

    async def wait(self, delay: float) -> None:
        await self._options.clock.sleep(delay)
        self.used += 1


class AttemptRunner:
    """Runs attempts of the actions of one run held under `claim`."""

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
        on_progress: ProgressSink,
    ) -> None:
        self._store = store
        self._claim = claim
        self.saga = saga
        self._specs = saga.actions
        self._inputs = dict(inputs)
        self._actions = actions
        """`uses` -> Action."""
        self._status = status
        self._checkpoints = dict(checkpoints)
        self._options = options
        self._on_progress = on_progress
        self._compensation_limiter: anyio.CapacityLimiter | None = None
        """Made on the first compensation: most runs never compensate."""
        self.segment: Segment | None = None
        """The span of this process's part of the run, while tracing is on."""
        self._faulty = bool(options.faults)
        """Faults are injected (only in fault-injection tests)."""
        self._scope_of_run = Scope(status.run_id, saga.name, self._inputs, _Outputs(status.actions))
        """What an action's references resolve against (made once: it reads the status)."""

    @property
    def max_parallel(self) -> int:
        """Actions of one run executing at once (also a fan-out's elements, by default)."""
        return self._options.max_parallel

    def action(self, name: str) -> Action:
        return self._actions[self._specs[name].uses]

    def compensable(self, name: str) -> bool:
        """Declared reversible by the definition and by the plugin alike."""
        return self.saga.actions[name].compensable and self.action(name).compensable()

    def retries(self, name: str) -> RetryBudget:
        spec = self._specs[name]
        return RetryBudget(spec.retry, self._actions[spec.uses], self._options)

    def context(
        self, name: str, *, compensating: bool = False, index: int | None = None
    ) -> RunContext:
        """The context of `name`'s current attempt (as the log counts it); of its element
        `index` when given."""
        status = self._status.actions[name]
        if index is not None:
            status = status.element(index)
        key = name if index is None else f"{name}/{index}"
        return RunContext(  # (by position: see `RunContext`)
            self._store,
            self._claim,
            name,
            status.compensation_attempts if compensating else status.attempts,
            self._options.deps,
            self._checkpoints.get(key),  # the last checkpoint
            self._on_progress,
            self._checkpoints.__setitem__,  # on a checkpoint
            compensating,
            index,
            NOOP_TRACER if self.segment is None else self.segment.tracer(name),
        )

    def elements(self, name: str) -> list[Any]:
        """The array a `for_each` action runs over, resolved from the run."""
        spec = self.saga.actions[name]
        found = resolve(spec.for_each, self._scope())
        if not isinstance(found, list):
            raise InputError(f"for_each: {spec.for_each} is {type(found).__name__}, not a list")
        return found

    async def execute(
        self, name: str, ctx: RunContext, element: tuple[int, Any] | None = None
    ) -> Outputs:
        """One forward attempt (of `element`, `(index, item)`, of a `for_each` action);
        its outputs, checked. Raises what the attempt raised."""
        segment = self.segment
        if segment is None:
            return await self._execute(name, ctx, element)
        key = ctx.idempotency_key
        with segment.attempt(name, ctx.attempt, key, compensating=False) as span:
            outputs = await self._execute(name, ctx, element)
            span.succeeded()
        return outputs

    async def _execute(
        self, name: str, ctx: RunContext, element: tuple[int, Any] | None
    ) -> Outputs:
        spec = self._specs[name]
        action = self._actions[spec.uses]
        options = self._options
        faults = options.faults
        if self._faulty:  # none outside fault-injection tests: skip the per-action scan
            await inject(faults.at(name, "before"), options.clock, options.exit)
        inputs = self.inputs(name, element)
        error = check_for(action.input_schema).error(inputs)
        if error is not None:
            raise _invalid(name, "input", error)
        limiter = options.limiter
        if limiter is not None:
            # Borrowed by the attempt's context, not the task: anyio looks the current
            # task up (and asyncio the process id) on every acquire and release otherwise.
            try:
                limiter.acquire_on_behalf_of_nowait(ctx)  # a free slot: no loop trip
            except anyio.WouldBlock:
                await limiter.acquire_on_behalf_of(ctx)
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
                limiter.release_on_behalf_of(ctx)
        if type(outputs) is not dict and not isinstance(outputs, Mapping):  # (dict: no ABC check)
            raise FatalError(f"action {name} returned {type(outputs).__name__}, not a mapping")
        outputs = dict(outputs)
        error = check_for(action.output_schema).error(outputs)
        if error is not None:
            raise _invalid(name, "output", error)
        try:
            check_json(outputs, "outputs")
        except NotJson as exc:
            raise FatalError(f"action {name} returned outputs that are not JSON: {exc}") from None
        if self._faulty:
            await inject(faults.at(name, "after"), options.clock, options.exit)
        return outputs

    async def compensate(
        self, name: str, ctx: RunContext, element: tuple[int, Any] | None = None
    ) -> None:
        """One attempt at undoing `name` (or its `element`), given the outputs it completed
        with."""
        segment = self.segment
        if segment is None:
            return await self._compensate(name, ctx, element)
        key = ctx.idempotency_key
        with segment.attempt(name, ctx.attempt, key, compensating=True) as span:
            await self._compensate(name, ctx, element)
            span.succeeded()

    async def _compensate(
        self, name: str, ctx: RunContext, element: tuple[int, Any] | None
    ) -> None:
        spec = self.saga.actions[name]
        status = self._status.actions[name]
        if element is not None:
            status = status.element(element[0])
        outputs = dict(status.outputs or {})
        if self._compensation_limiter is None:
            self._compensation_limiter = anyio.CapacityLimiter(max(1, self.max_parallel))
        async with self._compensation_limiter:
            inputs = self.inputs(name, element)
            with anyio.fail_after(spec.timeout):
                await self.action(name).compensate(ctx, inputs, outputs)

    async def finalize(self, name: str, ctx: RunContext) -> None:
        """`name`'s `finalize` hook, under its timeout; a fan-out's, once per element that
        started (in one context: the hooks are recorded together)."""
        status = self._status.actions[name]
        if self.saga.actions[name].for_each is None:
            elements: list[tuple[int, Any] | None] = [None]
        else:
            items = self.elements(name) if status.elements else []
            started = status.elements or {}
            elements = [(i, items[i]) for i in sorted(started) if started[i].attempts]
        for element in elements:
            with anyio.fail_after(self.saga.actions[name].timeout):
                await self.action(name).finalize(ctx, self.inputs(name, element))

    def saga_outputs(self) -> dict[str, JSON]:
        """The saga's `outputs:`, resolved from the run (recorded when it succeeds)."""
        return resolve_outputs(self.saga, self._scope())

    def inputs(self, name: str, element: tuple[int, Any] | None = None) -> dict[str, Any]:
        """`name`'s `with:` block, its references resolved from the run (and `element`,
        `(index, item)`, for a `for_each` action)."""
        scope = self._scope(element)
        plan = self.saga.whole_references(name)
        if plan is not None:  # (the same lookups as `resolve`'s, without its walk)
            lookup = scope.lookup
            return {key: lookup(ref) for key, ref in plan}
        resolved = resolve(self._specs[name].with_, scope)
        assert isinstance(resolved, dict)
        return resolved

    def _scope(self, element: tuple[int, Any] | None = None) -> Scope:
        if element is None:
            return self._scope_of_run
        status = self._status
        return Scope(status.run_id, self.saga.name, self._inputs, _Outputs(status.actions), element)


def _invalid(name: str, what: str, error: ValidationError) -> InputError | FatalError:
    """The error a value that fails its schema raises (the check itself is inlined where
    values are checked: it runs twice per attempt)."""
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    message = f"action {name}: {what} {where}: {error.message}"
    return InputError(message) if what == "input" else FatalError(message)


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

    def get(self, name: str, default: Any = None) -> Any:  # (Mapping's goes via a KeyError)
        found = self._actions.get(name)
        if found is None or found.outputs is None:
            return default
        return found.outputs

    def __iter__(self) -> Iterator[str]:
        return (name for name, s in self._actions.items() if s.outputs is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)
