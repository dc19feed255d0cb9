"""Tails: one shared, growing copy of a run's log for every SSE stream following it.

A stream never reads the store itself: the run's tail does, once per batch of new records
(when this process published one of the run's events), or once per poll interval for runs
other processes drive. However many clients follow a run, the store sees one reader.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
from sagactl.engine import Event
from sagactl.engine.states import FINISHED, RunState
from sagactl.engine.store import Store

from .hub import EventHub

SETTLED = frozenset(str(s) for s in FINISHED | {RunState.STUCK})
"""Where a stream ends: nothing more happens to the run without an operator."""


@dataclass(eq=False)
class Tail:
    run_id: str
    events: list[Event] = field(default_factory=list)
    """The log from its first record, in seq order."""
    state: str | None = None
    """The run's state as its run-level records say."""
    stale: bool = True
    """A record was published since the last read (or nothing was read yet)."""
    read_at: float = float("-inf")
    users: int = 0
    stop: Callable[[], None] | None = None
    """Stops the hub listener feeding `poke`."""
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    _changed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def settled(self) -> bool:
        return self.state in SETTLED

    def changed(self) -> anyio.Event:
        """Set when the tail learns something: take it before looking, then wait on it."""
        return self._changed

    def poke(self, event: Event) -> None:
        """A hub listener: a logged record makes the tail stale; anything wakes streams."""
        if event.seq:
            self.stale = True
        self.wake()

    def wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def after(self, seq: int) -> list[Event]:
        """The records with a seq above `seq`."""
        return self.events[bisect.bisect_right(self.events, seq, key=lambda e: e.seq) :]


class Tails:
    def __init__(self, store: Store, hub: EventHub, poll: float) -> None:
        self.store = store
        self.hub = hub
        self.poll = poll
        self._open: dict[str, Tail] = {}

    def known(self, run_id: str) -> bool:
        """Whether a stream already follows the run and has read some of its log (then
        the run exists: no need to ask the store)."""
        tail = self._open.get(run_id)
        return tail is not None and bool(tail.events)

    @contextmanager
    def follow(self, run_id: str) -> Iterator[Tail]:
        tail = self._open.get(run_id)
        if tail is None:
            tail = self._open[run_id] = Tail(run_id)
            tail.stop = self.hub.listen(run_id, tail.poke)
        tail.users += 1
        try:
            yield tail
        finally:
            tail.users -= 1
            if tail.users == 0:
                del self._open[run_id]
                if tail.stop is not None:
                    tail.stop()

    async def refresh(self, tail: Tail, *, poll: bool = False) -> None:
        """Reads what the store has beyond the tail, when a record was published here
        (or, with `poll`, when the last read is a poll interval old)."""
        async with tail.lock:
            due = poll and time.monotonic() - tail.read_at >= self.poll
            if not (tail.stale or due):
                return
            tail.stale = False
            last = tail.events[-1].seq if tail.events else 0
            new = await self.store.read_log(tail.run_id, after_seq=last)
            tail.read_at = time.monotonic()
            for event in new:
                tail.events.append(event)
                if event.action is None and "state" in event.data:
                    tail.state = str(event.data["state"])
            if new:
                tail.wake()
