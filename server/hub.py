"""EventHub: hands every event this process's engines publish to the listeners of its run.

SSE streams listen through their run's tail (it reads the store when told a record was
committed) and for progress events, which the log does not keep one by one.
"""

from __future__ import annotations

from collections.abc import Callable

from sagactl.engine import Event

Listener = Callable[[Event], None]


class EventHub:
    def __init__(self) -> None:
        self._listeners: dict[str, set[Listener]] = {}

    def publish(self, event: Event) -> None:
        """An engine `on_event` handler: runs on the event loop, never blocks."""
        for listener in tuple(self._listeners.get(event.run_id, ())):
            listener(event)

    def listen(self, run_id: str, listener: Listener) -> Callable[[], None]:
        """Calls `listener` with every event of `run_id`; returns the function that stops it."""
        bucket = self._listeners.setdefault(run_id, set())
        bucket.add(listener)

        def stop() -> None:
            bucket.discard(listener)
            if not bucket and self._listeners.get(run_id) is bucket:
                del self._listeners[run_id]

        return stop
