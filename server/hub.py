"""EventHub: wakes the SSE streams of a run when this process commits one of its events.

Streams always read the store (by `seq`), so they see every record once and in order; the
hub only tells them when to look. Runs driven by other processes are seen by polling.
Progress events, which the log does not keep one by one, are handed to live listeners.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from sagactl.engine import Event

Listener = Callable[[Event], None]


class EventHub:
    def __init__(self) -> None:
        self._wakers: dict[str, anyio.Event] = {}
        self._listeners: dict[str, set[Listener]] = {}
        self._all: set[Listener] = set()

    def publish(self, event: Event) -> None:
        """An engine `on_event` handler: runs on the event loop, never blocks."""
        waker = self._wakers.pop(event.run_id, None)
        if waker is not None:
            waker.set()
        for listener in (*self._listeners.get(event.run_id, ()), *self._all):
            listener(event)

    def waker(self, run_id: str) -> anyio.Event:
        """Set by the next event of `run_id` published here. Take it *before* reading the
        store, then wait on it: an event committed in between still wakes the reader."""
        waker = self._wakers.get(run_id)
        if waker is None:
            waker = self._wakers[run_id] = anyio.Event()
        return waker

    def forget(self, run_id: str) -> None:
        """A reader of `run_id` left (after `listen`'s stop): drop the waker with the last."""
        if run_id not in self._listeners:
            self._wakers.pop(run_id, None)

    def listen(self, run_id: str | None, listener: Listener) -> Callable[[], None]:
        """Calls `listener` with every event of `run_id` (None: of every run); returns
        the function that stops it."""
        bucket = self._all if run_id is None else self._listeners.setdefault(run_id, set())
        bucket.add(listener)

        def stop() -> None:
            bucket.discard(listener)
            if run_id is not None and not bucket:
                self._listeners.pop(run_id, None)

        return stop
