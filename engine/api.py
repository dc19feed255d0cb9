"""The Python API of the runtime: start, resume, cancel, abandon, inspect and prune runs.

`Engine` holds a store and an action provider; everything the CLI does goes through it.
`run_saga_async` is a one-call shortcut; `sync.py` has the same from synchronous code.

    async with Engine(db="sqlite:///tmp/log.db", actions={"demo.hello": Hello()}) as engine:
        result = await engine.run(saga, {"name": "world"})
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn

import anyio
import anyio.abc
import jsonschema
import structlog

from . import events as ev
from .action import JSON, Action
from .clock import Clock, SystemClock
from .deps import Dependencies
from .errors import InputError
from .events import Event, EventHandler
from .faults import FaultPlan
from .json_schema import validator
from .json_values import NotJson, check_json
from .model import CompiledSaga
from .providers import ActionProvider, as_provider
from .scheduler import Execution, Options
from .states import FINISHED, UNFINISHED, ActionState, ActionStatus, RunState, RunStatus, fold
from .store import Created, NewRun, RunBusy, RunRecord, Store, open_store
from .store.base import RELEASING, Claim, ClaimLost

log = structlog.get_logger("sagactl")

RELEASED = frozenset(RunState(s) for s in RELEASING)

ActionsArg = ActionProvider | Mapping[str, Action | Callable[[Dependencies], Action]] | None


@dataclass(frozen=True, slots=True)
class RunRecordLike:
    """What an execution needs of a run row before the row exists."""

    run_id: str
    inputs: Mapping[str, JSON]


@dataclass(frozen=True, slots=True)
class RunResult:
    """A run as it stands: its state, its error, and every action's state."""

    run_id: str
    saga: str
    state: str
    actions: Mapping[str, ActionStatus]
    error: str | None = None
    code: str | None = None
    failed_action: str | None = None
    bad_input: bool = False
    """The run failed on bad input (an `InputError`): the CLI exits 2."""
    started: float | None = None
    finished: float | None = None
    progress: Mapping[str, JSON] = field(default_factory=dict)
    owner: str | None = None
    """The worker holding the run (None: nobody)."""
    lease_expires: float | None = None
    """When the owner's lease runs out (unix time, database clock); None without leases."""
    node: str | None = None
    """The node the run is pinned to, if any."""

    @property
    def ok(self) -> bool:
        return self.state == RunState.SUCCEEDED

    @property
    def exit_code(self) -> int:
        """0 succeeded, 2 bad input, 1 any other outcome (DESIGN §7)."""
        if self.ok:
            return 0
        return 2 if self.bad_input else 1

    def to_json(self) -> dict[str, Any]:
        """The `status --json` object of DESIGN §7."""
        return {
            "run_id": self.run_id,
            "saga": self.saga,
            "state": self.state,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
            "owner": self.owner,
            "lease_expires": self.lease_expires,
            "node": self.node,
            "actions": {name: s.to_json() for name, s in self.actions.items()},
        }


def _result(
    record: RunRecord, status: RunStatus, progress: Mapping[str, JSON] | None = None
) -> RunResult:
    return RunResult(
        run_id=record.run_id,
        saga=record.saga,
        state=str(status.state or RunState(record.state)),
        actions=status.actions,
        error=status.error,
        code=status.code,
        failed_action=status.failed_action,
        bad_input=status.bad_input,
        started=status.started,
        finished=status.finished,
        progress=progress or {},
        owner=record.owner,
        lease_expires=record.lease_expires,
        node=record.node,
    )


_ids = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(16)))


def new_run_id() -> str:
    """16 hex digits, random (not secret: run ids only need to be unique)."""
    return f"{_ids.getrandbits(64):016x}"


def check_inputs(saga: CompiledSaga, inputs: Mapping[str, JSON]) -> dict[str, JSON]:
    """The saga's inputs checked against their schemas, defaults filled in; `InputError`."""
    unknown = sorted(set(inputs) - set(saga.inputs))
    if unknown:
        raise InputError(f"saga {saga.name} has no input {unknown[0]!r}")
    checked: dict[str, JSON] = {}
    for name, schema in saga.inputs.items():
        plain = _plain(schema)
        if name in inputs:
            value = inputs[name]
        elif "default" in plain:
            value = plain["default"]
        else:
            raise InputError(f"saga {saga.name} needs input {name!r}")
        try:
            check_json(value, f"input {name}")
        except NotJson as exc:
            raise InputError(str(exc)) from None
        error = jsonschema.exceptions.best_match(validator(plain).iter_errors(value))
        if error is not None:
            raise InputError(f"input {name}: {error.message}")
        checked[name] = value
    return checked


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _unwrap(group: BaseExceptionGroup[Any]) -> BaseException:
    """The one real error inside nested task-group errors, if there is exactly one."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    return leaves[0] if len(leaves) == 1 else group


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
    ) -> None:
        self._owns_store = not isinstance(db, Store)
        self.store: Store = db if isinstance(db, Store) else open_store(db)
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

    async def _heartbeat(self, interval: float) -> None:
        # Leases (PostgreSQL) expire unless renewed: renew every run this store holds.
        while True:
            await anyio.sleep(interval)
            try:
                lost = await self.store.heartbeat()
            except Exception:
                log.exception("cannot renew leases")
                continue
            for run_id in lost:
                log.warning("lease lost: another worker took the run over", run_id=run_id)
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
        created = await self._create(saga, inputs, run_id, claim=False, node=node)
        return created.run.run_id

    async def run(
        self,
        saga: CompiledSaga,
        inputs: Mapping[str, JSON] | None = None,
        *,
        run_id: str | None = None,
    ) -> RunResult:
        """Run the saga to its end (idempotent on `run_id`: a known run is resumed or,
        when finished, returned as it stands)."""
        unknown = self.faults.unknown_actions(saga.actions)
        if unknown:
            raise InputError(f"--fault names {unknown[0]!r}, not an action of {saga.name}")
        new = self._new_run(saga, inputs, run_id)
        created_event = Event(new.run_id, ev.RUN_CREATED, None, {"state": "queued"}, seq=1)
        execution = self._execution(
            saga,
            RunRecordLike(new.run_id, new.inputs),
            Claim(new.run_id, "", 0),  # replaced by the real claim once created
            [created_event],
            {},
        )
        created = await self.store.create_run(new, claim=True, records=execution.opening())
        if created.claim is None:
            return await self.resume(created.run.run_id)  # the run existed: idempotent
        self._sagas.setdefault(saga.canonical_hash, saga)
        execution.claim = created.claim
        execution.emit_all(created.records[1:])
        return await self._drive(created.run, execution)

    def _new_run(
        self, saga: CompiledSaga, inputs: Mapping[str, JSON] | None, run_id: str | None
    ) -> NewRun:
        checked = check_inputs(saga, inputs or {})
        uses = sorted({spec.uses for spec in saga.actions.values()})
        return NewRun(
            run_id=run_id or new_run_id(),
            saga=saga.name,
            definition_hash=saga.canonical_hash,
            definition=saga.to_dict(),
            inputs=checked,
            plugin_versions={name: self.provider.version(name) for name in uses},
        )

    async def _create(
        self,
        saga: CompiledSaga,
        inputs: Mapping[str, JSON] | None,
        run_id: str | None,
        *,
        claim: bool,
        node: str | None = None,
    ) -> Created:
        new = dataclasses.replace(self._new_run(saga, inputs, run_id), node=node)
        return await self.store.create_run(new, claim=claim)

    async def resume(self, run_id: str) -> RunResult:
        """Continue a run from its pin: at once if its owner died; `RunBusy` if one lives."""
        record = await self.store.get_run(run_id)
        if RunState(record.state) in FINISHED:
            return await self.status(run_id)
        claim = await self.store.claim(run_id)
        return await self._execute(await self.store.get_run(run_id), claim)

    async def resume_all(self, *, include_stuck: bool = False) -> list[RunResult]:
        """Resume every unfinished run nobody live holds (stuck ones too when asked)."""
        states = set(UNFINISHED) | ({RunState.STUCK} if include_stuck else set())
        orphans = await self.store.orphans([str(s) for s in states])
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
        record = await self.store.get_run(claim.run_id)
        if RunState(record.state) in FINISHED:
            await self._release(claim)
            return await self.status(claim.run_id)
        return await self._execute(record, claim)

    def _pinned(self, record: RunRecord) -> CompiledSaga:
        """The run's pinned definition (never the file as it is now), compiled once."""
        saga = self._sagas.get(record.definition_hash)
        if saga is None:
            saga = self._sagas[record.definition_hash] = CompiledSaga.from_dict(record.definition)
        return saga

    def _execution(
        self,
        saga: CompiledSaga,
        record: RunRecordLike | RunRecord,
        claim: Claim,
        records: Sequence[Event],
        checkpoints: Mapping[str, JSON],
        *,
        cancel: bool = False,
    ) -> Execution:
        actions = {spec.uses: self.provider.create(spec.uses) for spec in saga.actions.values()}
        return Execution(
            store=self.store,
            claim=claim,
            saga=saga,
            inputs=record.inputs,
            actions=actions,
            status=fold(record.run_id, saga.topological_order(), records),
            checkpoints=checkpoints,
            options=self.options,
            cancel_requested=cancel,
        )

    async def _execute(self, record: RunRecord, claim: Claim, *, cancel: bool = False) -> RunResult:
        """Drive a run that exists, from its pin and its log, under `claim`."""
        try:
            saga = self._pinned(record)
            self._warn_version_drift(record)
            execution = self._execution(
                saga,
                record,
                claim,
                await self.store.read_log(record.run_id),
                await self.store.checkpoints(record.run_id),
                cancel=cancel or record.cancel_requested,
            )
        except BaseException:
            await self._release(claim)
            raise
        return await self._drive(record, execution)

    async def _drive(self, record: RunRecord, execution: Execution) -> RunResult:
        claim = execution.claim
        self._live[record.run_id] = execution
        try:
            await execution.run()
        except BaseExceptionGroup as group:
            error = _unwrap(group)
            if isinstance(error, Exception) and not isinstance(error, ClaimLost):
                await self._release(claim)
            raise error from None
        except ClaimLost:
            raise
        except Exception:
            await self._release(claim)
            raise
        finally:
            self._live.pop(record.run_id, None)
        if execution.status.state not in RELEASED:
            await self._release(claim)
        # The claim is given up by now: nobody holds the run any more.
        return _result(
            dataclasses.replace(record, owner=None, lease_expires=None), execution.status
        )

    async def _release(self, claim: Claim) -> None:
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
        await self.store.request_cancel(run_id)
        live = self._live.get(run_id)
        if live is not None:
            live.request_cancel()
            return await self.status(run_id)
        try:
            claim = await self.store.claim(run_id)
        except RunBusy:
            return await self.status(run_id)  # its owner will compensate it
        return await self._execute(await self.store.get_run(run_id), claim, cancel=True)

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
                    records.append(Event(run_id, ev.ACTION_SKIPPED, name))
            records.append(Event(run_id, ev.RUN_FINISHED, None, {"state": "abandoned"}))
            for r in records:
                status.apply(r)  # checks every move against the state machine
            await self.store.append(claim, records)
        finally:
            await self._release(claim)
        return await self.status(run_id)

    async def prune(self, older_than: float, *, page: int = 500) -> int:
        """Delete runs finished more than `older_than` seconds ago, `page` per commit."""
        if not math.isfinite(older_than) or older_than < 0:
            raise InputError("the age to prune must be a number of seconds >= 0")
        cutoff = self.options.clock.now() - older_than
        return await self.store.prune(finished_before=cutoff, page=page)

    # -- reading -----------------------------------------------------------------------

    async def status(self, run_id: str) -> RunResult:
        """The run as its log tells it, with each action's last progress."""
        record = await self.store.get_run(run_id)
        saga = self._pinned(record)
        status = fold(run_id, saga.topological_order(), await self.store.read_log(run_id))
        return _result(record, status, await self.store.progress(run_id))

    async def list_runs(
        self, *, states: Sequence[str] | None = None, limit: int = 1000
    ) -> list[RunRecord]:
        return await self.store.list_runs(states=states, limit=limit)

    async def log(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        await self.store.get_run(run_id)  # RunNotFound for an unknown id
        return await self.store.read_log(run_id, after_seq=after_seq)


# -- one-call shortcuts ----------------------------------------------------------------


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
