"""Tails: one shared, growing copy of a run's log for every SSE stream following it.

A stream never reads the store itself: the run's tail does, when a record this process
published does not follow the last one it holds (records that do are taken as published),
or once per poll interval for runs other processes drive. However many clients follow a
run, the store sees one reader.
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
        """A hub listener. A logged record that follows the tail's last one is taken as
        it is (the hub hears of records once they are durable): no read of the store
        between a commit and its streams. One after a gap makes the tail stale."""
        if event.seq:
            if not self.stale and event.seq == self.last_seq + 1:
                self.take([event])
            else:
                self.stale = True
        self.wake()

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    def take(self, events: list[Event]) -> bool:
        """Appends the records beyond the tail's last one; True when there were some."""
        new = [event for event in events if event.seq > self.last_seq]
        for event in new:
            self.events.append(event)
            if event.action is None and "state" in event.data:
                self.state = str(event.data["state"])
        return bool(new)

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
            new = await self.store.read_log(tail.run_id, after_seq=tail.last_seq)
            tail.read_at = time.monotonic()
            # Records published while reading were taken already: each is kept once.
            if tail.take(new):
                tail.wake()
