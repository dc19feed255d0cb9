"""A run's log as this process writes it: records applied at once, committed in order,
emitted to subscribers once durable.

The in-memory `RunStatus` moves with every record as it is created (the state machine in
`sagactl.engine.states` checks each move), and the records reach the store in that same
order; subscribers hear of a record only once its commit is durable.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from ..action import JSON
from ..clock import Clock
from ..errors import InputError
from ..event_payloads import Payload, RunStuck
from ..events import Event, EventHandler, EventKind
from ..shield import shielded
from ..states import RunState, RunStatus
from ..store.base import Claim, Store, StoreTransaction

log = structlog.get_logger("sagactl")


def error_text(exc: BaseException) -> str:
    """How a failure reads in the log and in `status`."""
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    if isinstance(exc, InputError) or getattr(exc, "names_its_cause", False):
        return text
    return f"{type(exc).__name__}: {text}"


def error_code(exc: BaseException) -> str:
    """The failure's stable code: the error's `code`, else its class name."""
    return str(getattr(exc, "code", None) or type(exc).__name__)


class Recorder:
    """Makes a run's records, each applied to the in-memory status at once."""

    def __init__(self, status: RunStatus, clock: Clock) -> None:
        self.status = status
        self.clock = clock

    @property
    def run_id(self) -> str:
        return self.status.run_id

    def record(
        self, kind: EventKind, action: str | None = None, data: Payload | None = None
    ) -> Event:
        """A record, applied to the status now (raises `InvalidTransition` on a bad move)."""
        record = Event(self.status.run_id, kind, action, data or {}, self.clock.now())
        self.status.apply(record)
        return record

    def stuck(
        self, name: str, exc: BaseException, error: str, *, bad_input: bool | None = None
    ) -> Event:
        """The record leaving the run `stuck` on `name`'s failure: it waits for an operator."""
        data = RunStuck(state=RunState.STUCK, error=error, code=error_code(exc), failed_action=name)
        if bad_input is not None:
            data["bad_input"] = bad_input
        return self.record(EventKind.RUN_STUCK, None, data)


class Journal(Recorder):
    """The records of one run held under `claim`: committed to the store, then emitted."""

    def __init__(
        self,
        status: RunStatus,
        clock: Clock,
        *,
        store: Store,
        claim: Claim,
        handlers: Iterable[EventHandler],
    ) -> None:
        super().__init__(status, clock)
        self.store = store
        self.claim = claim
        self._handlers = tuple(handlers)
        self._progress: dict[str, JSON] = {}

    def note_progress(self, action: str, data: JSON) -> None:
        """Keep `action`'s last progress; it is saved with the next commit."""
        self._progress[action] = data

    @property
    def has_progress(self) -> bool:
        return bool(self._progress)

    async def commit(self, records: list[Event], tx: StoreTransaction | None = None) -> None:
        """Make `records` (and the progress noted since the last commit) durable, in one
        commit with the action's transaction `tx` if given; then emit them. Shielded (by
        the store itself where it can): a record applied to the status must reach the log
        even while the run is cancelled."""
        progress = self._progress
        if progress:  # (most commits carry none: no new dict for them)
            self._progress = {}
        if tx is None and self.store.appends_shielded:
            # The store shields its own waits, only where it waits: most commits on the
            # loop never do, and a scope of ours would cost about as much as the append.
            numbered = await self._append(records, progress)
        else:
            with shielded():
                if tx is not None:
                    numbered = await tx.commit(records, progress=progress or None)
                else:
                    numbered = await self._append(records, progress)
        if self._handlers:
            self.emit_all(numbered)

    async def _append(self, records: list[Event], progress: dict[str, JSON]) -> list[Event]:
        # Numbered records only for someone to hear them (rebuilding each costs).
        return await self.store.append(
            self.claim, records, progress=progress or None, numbered=bool(self._handlers)
        )

    def emit(self, event: Event) -> None:
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("event handler failed", handler=repr(handler), kind=event.kind)

    def emit_all(self, events: Iterable[Event]) -> None:
        if not self._handlers:
            return
        for event in events:
            self.emit(event)
