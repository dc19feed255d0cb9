"""Prometheus metrics: every metric sagactl exposes, defined once for `sagactl worker
--metrics-port` and `sagactl serve`'s `/metrics`.

Two sources. What this process did is counted from the engine's events as they happen
(runs started and finished, action attempts and their durations, compensations) and from
the worker (claims, takeovers, lost leases, runs pruned). What the store holds is read at
each scrape (runs by saga and state, stuck runs by age, the oldest unfinished run by saga),
so any process shows the whole store's state. Labels carry saga and action names.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .alerts import stuck_by_age
from .events import Event, EventKind
from .states import UNFINISHED
from .store.base import Claim, Store

K = EventKind
_UNFINISHED = frozenset(str(s) for s in UNFINISHED)
_ATTEMPT_ENDS = {K.ACTION_SUCCEEDED: "succeeded", K.ACTION_FAILED: "failed"}
_COMPENSATION_ENDS = {K.ACTION_COMPENSATED: "compensated", K.COMPENSATION_FAILED: "failed"}
_RUN_ENDS = frozenset({K.RUN_FINISHED, K.RUN_STUCK})

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """One registry (not the process-wide default: tests run several in one process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.runs = Gauge(
            "sagactl_runs", "Runs in the store by saga and state", ["saga", "state"], registry=r
        )
        self.oldest = Gauge(
            "sagactl_oldest_unfinished_run_age_seconds",
            "Age of the oldest run not finished yet, by saga",
            ["saga"],
            registry=r,
        )
        self.stuck = Gauge(
            "sagactl_stuck_runs",
            "Stuck runs by saga, stuck for longer than `older_than`",
            ["saga", "older_than"],
            registry=r,
        )
        self.oldest_stuck = Gauge(
            "sagactl_oldest_stuck_run_age_seconds",
            "How long the longest-stuck run of each saga has been stuck",
            ["saga"],
            registry=r,
        )
        self.started = Counter(
            "sagactl_runs_started", "Runs this process started", ["saga"], registry=r
        )
        self.finished = Counter(
            "sagactl_runs_finished",
            "Runs this process brought to an end (finished or stuck), by end state",
            ["saga", "state"],
            registry=r,
        )
        self.attempts = Counter(
            "sagactl_action_attempts",
            "Action attempts this process started",
            ["saga", "action"],
            registry=r,
        )
        self.durations = Histogram(
            "sagactl_action_duration_seconds",
            "Duration of action attempts run by this process, by outcome",
            ["saga", "action", "outcome"],
            registry=r,
            buckets=DURATION_BUCKETS,
        )
        self.compensations = Counter(
            "sagactl_compensations",
            "Compensation attempts this process ended, by outcome",
            ["saga", "action", "outcome"],
            registry=r,
        )
        self.claims = Counter("sagactl_claims", "Runs this worker claimed", registry=r)
        self.takeovers = Counter(
            "sagactl_takeovers",
            "Claims of runs whose previous holder was lost (its lease ran out)",
            registry=r,
        )
        self.lost = Counter(
            "sagactl_lost_leases", "Runs this worker lost to another worker", registry=r
        )
        self.pruned = Counter(
            "sagactl_runs_pruned", "Finished runs this process pruned by retention", registry=r
        )
        self._sagas: dict[str, str] = {}
        self._began: dict[tuple[str, str], float] = {}

    # -- what this process does --------------------------------------------------------

    def driving(self, run_id: str, saga: str) -> None:
        """An `Options.on_run` hook: this process drives `run_id` of `saga` from now on."""
        self._sagas[run_id] = saga

    def observe(self, event: Event) -> None:
        """An engine `on_event` handler."""
        kind, run_id = event.kind, event.run_id
        saga = self._sagas.get(run_id)
        if kind is K.RUN_CREATED:
            saga = self._sagas[run_id] = str(event.data.get("saga"))
        if saga is None:
            return  # a run this process does not drive (e.g. read back for a client)
        action = event.action
        if action is None:
            if kind is K.RUN_STARTED:
                self.started.labels(saga).inc()
            elif kind in _RUN_ENDS:
                self.finished.labels(saga, str(event.data.get("state"))).inc()
                self._sagas.pop(run_id, None)
            return
        key = (run_id, action)
        if kind is K.ACTION_STARTED:
            self.attempts.labels(saga, action).inc()
            self._began[key] = event.at
        elif kind in _ATTEMPT_ENDS:
            began = self._began.pop(key, None)
            if began is not None:
                self.durations.labels(saga, action, _ATTEMPT_ENDS[kind]).observe(
                    max(0.0, event.at - began)
                )
        elif kind in _COMPENSATION_ENDS:
            self.compensations.labels(saga, action, _COMPENSATION_ENDS[kind]).inc()

    def claimed(self, claim: Claim) -> None:
        """A worker claimed a run: a takeover when its previous holder did not hand it back
        (a run released by a SIGTERMed worker, or after a pause, is only a claim)."""
        self.claims.inc()
        if claim.taken_over:
            self.takeovers.inc()

    # -- what the store holds ----------------------------------------------------------

    async def render(self, store: Store) -> bytes:
        """The exposition text, with the store's gauges read now."""
        now = time.time()
        self.runs.clear()
        self.oldest.clear()
        oldest: dict[str, float] = {}
        for saga, state, count, first in await store.census():
            self.runs.labels(saga, state).set(count)
            if state in _UNFINISHED:
                oldest[saga] = min(first, oldest.get(saga, first))
        for saga, first in oldest.items():
            self.oldest.labels(saga).set(max(0.0, now - first))
        stuck = await store.stuck_runs()
        self.stuck.clear()
        self.oldest_stuck.clear()
        for saga, ages in stuck_by_age(stuck, now).items():
            for label, count in ages.items():
                self.stuck.labels(saga, label).set(count)
            longest = min(since for s, since in stuck if s == saga)
            self.oldest_stuck.labels(saga).set(max(0.0, now - longest))
        return generate_latest(self.registry)
