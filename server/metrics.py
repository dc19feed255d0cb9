"""`GET /metrics`: Prometheus text for runs by saga and state, action durations and the
age of the oldest unfinished run."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from sagactl.engine import Event
from sagactl.engine.events import EventKind
from sagactl.engine.states import UNFINISHED
from sagactl.engine.store import Store

_ENDS = {EventKind.ACTION_SUCCEEDED: "succeeded", EventKind.ACTION_FAILED: "failed"}
_UNFINISHED = {str(s) for s in UNFINISHED}


class Metrics:
    """One registry per server (not the process-wide default: tests run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Gauge(
            "sagactl_runs",
            "Runs in the store by saga and state",
            ["saga", "state"],
            registry=self.registry,
        )
        self.oldest = Gauge(
            "sagactl_oldest_unfinished_run_age_seconds",
            "Age of the oldest run not finished yet (0: none)",
            registry=self.registry,
        )
        self.durations = Histogram(
            "sagactl_action_duration_seconds",
            "Duration of action attempts run by this server, by action and outcome",
            ["action", "outcome"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
        )
        self._started: dict[tuple[str, str], float] = {}

    def observe(self, event: Event) -> None:
        """An engine `on_event` handler: times each attempt from its start to its end."""
        if event.action is None:
            return
        key = (event.run_id, event.action)
        if event.kind == EventKind.ACTION_STARTED:
            self._started[key] = event.at
        elif event.kind in _ENDS:
            began = self._started.pop(key, None)
            if began is not None:
                self.durations.labels(event.action, _ENDS[event.kind]).observe(
                    max(0.0, event.at - began)
                )

    async def render(self, store: Store) -> bytes:
        """The exposition text, with the run gauges read from the store now."""
        self.runs.clear()
        oldest: float | None = None
        for saga, state, count, first in await store.census():
            self.runs.labels(saga, state).set(count)
            if state in _UNFINISHED and (oldest is None or first < oldest):
                oldest = first
        self.oldest.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
        return generate_latest(self.registry)
