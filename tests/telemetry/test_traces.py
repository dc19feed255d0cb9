"""One trace per run, across processes: real `sagactl` processes export to a real OTLP/HTTP
receiver on loopback; SIGKILL, `resume`, and a worker takeover on PostgreSQL."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections import Counter
from typing import Any

import pytest
from sagactl.engine.tracing import root_span_id_of, segment_span_id_of, trace_id_of

from ..cli.conftest import Cli, wait_for
from ..cli.test_startup_imports import imported
from .otlp import OtlpReceiver, ReceivedSpan, otel_env

ENDS = ("action_succeeded", "action_failed", "action_compensated", "compensation_failed")


def stored_trace_id(cli: Cli, run_id: str) -> str:
    conn = sqlite3.connect(cli.db)
    try:
        (trace_id,) = conn.execute(
            "SELECT trace_id FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
    finally:
        conn.close()
    return str(trace_id)


def timed_log(cli: Cli, run_id: str) -> list[tuple[str, float, dict[str, Any]]]:
    """(kind, at, data) of the run's log, in order."""
    conn = sqlite3.connect(cli.db)
    try:
        rows = conn.execute(
            "SELECT kind, at, data FROM run_log WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    finally:
        conn.close()
    return [(kind, at, json.loads(data)) for kind, at, data in rows]


def _opening(log: list[tuple[str, float, dict[str, Any]]], segment: int) -> float:
    return next(at for _, at, data in log if data.get("segment") == segment)


def ended_attempts(events: list[tuple[str, str | None]]) -> Counter[str]:
    """Attempts per action that the log saw end (forward or compensating)."""
    return Counter(action for kind, action in events if kind in ENDS and action is not None)


def attempt_spans(receiver: OtlpReceiver) -> list[ReceivedSpan]:
    return [s for s in receiver.received() if s.name.startswith(("action ", "compensate "))]


class TestSigkillAndResume:
    def test_one_trace_across_sigkill_and_resume(
        self, cli: Cli, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Killed while b runs, then resumed by another process: every span of both
        processes is in the run's one trace, under the run's span; an attempt span per
        attempt the log saw end, with its attributes."""
        for name, value in otel_env(receiver.endpoint).items():
            monkeypatch.setenv(name, value)
        hold = cli.tmp / "hold"
        hold.touch()
        path = cli.saga(
            "chain", {"a": {}, "b": {"needs": ["a"], "hold": str(hold)}, "c": {"needs": ["b"]}}
        )
        proc = cli.start("run", "-q", str(path))
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        wait_for(lambda: "start:b" in cli.lines(), "b to be running")
        wait_for(lambda: bool(receiver.named("action a")), "a's span to be exported")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        hold.unlink()
        done = cli("resume", run_id)
        assert done.returncode == 0, done.stderr

        trace_id = trace_id_of(run_id)
        assert stored_trace_id(cli, run_id) == trace_id
        spans = receiver.received()
        assert {s.trace_id for s in spans} == {trace_id}
        assert {s.service for s in spans} == {"sagactl-test"}
        root = f"{root_span_id_of(run_id):016x}"
        # Two segments: the killed process's, exported by the resume from the log (it
        # never ended, so it was never sent), and the resume's own.
        segments = {s.attributes["sagactl.segment"]: s for s in receiver.named("saga chain")}
        assert sorted(segments) == [1, 2]
        lost, resumed = segments[1], segments[2]
        assert lost.span_id == f"{segment_span_id_of(run_id, 1):016x}"
        assert resumed.span_id == f"{segment_span_id_of(run_id, 2):016x}"
        assert lost.parent_id == resumed.parent_id == root
        assert lost.attributes["sagactl.recovered"] is True and lost.error
        assert lost.status == "process lost"
        assert "sagactl.recovered" not in resumed.attributes and not resumed.error
        assert resumed.attributes["sagactl.entry_state"] == "running"
        assert resumed.attributes["sagactl.outcome"] == "succeeded"
        (run_span,) = receiver.named("run chain")
        assert (run_span.span_id, run_span.parent_id) == (root, "")
        assert run_span.attributes["sagactl.outcome"] == "succeeded"
        # The trace is whole: every span's parent is in it.
        ids = {s.span_id for s in spans}
        assert all(s.parent_id in ids for s in spans if s is not run_span)
        # The log's times bound the rebuilt segment: its first and last records.
        log = timed_log(cli, run_id)
        last_of_first = max(at for _, at, _ in log if at < _opening(log, 2))
        assert lost.start == pytest.approx(_opening(log, 1), abs=1e-6)
        assert lost.end == pytest.approx(last_of_first, abs=1e-6)

        attempts = attempt_spans(receiver)
        assert Counter(s.attributes["sagactl.action"] for s in attempts) == ended_attempts(
            cli.events(run_id)
        )
        by_action = {s.attributes["sagactl.action"]: s for s in attempts}
        # b's first attempt died with its process: only the second one has a span.
        assert by_action["b"].attributes["sagactl.attempt"] == 2
        assert by_action["b"].parent_id == by_action["c"].parent_id == resumed.span_id
        assert by_action["a"].parent_id == lost.span_id
        assert by_action["c"].attributes == {
            "sagactl.saga": "chain",
            "sagactl.run_id": run_id,
            "sagactl.action": "c",
            "sagactl.attempt": 1,
            "sagactl.idempotency_key": f"{run_id}/c",
            "sagactl.compensating": False,
            "sagactl.outcome": "succeeded",
        }

    def test_failure_and_compensation_spans(
        self, cli: Cli, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failed action's span records the error; each compensation has its span."""
        for name, value in otel_env(receiver.endpoint).items():
            monkeypatch.setenv(name, value)
        path = cli.saga("undo", {"a": {}, "b": {"needs": ["a"], "fail": True}})
        done = cli("run", "-q", str(path))
        assert done.returncode == 1
        run_id = done.stdout.split()[0]
        spans = receiver.received()
        assert {s.trace_id for s in spans} == {trace_id_of(run_id)}
        (failed,) = receiver.named("action b")
        assert failed.error and failed.exception
        assert failed.attributes["sagactl.outcome"] == "failed"
        (undo,) = receiver.named("compensate a")
        assert undo.attributes["sagactl.compensating"] is True
        assert undo.attributes["sagactl.outcome"] == "succeeded"
        assert Counter(s.attributes["sagactl.action"] for s in attempt_spans(receiver)) == (
            ended_attempts(cli.events(run_id))
        )
        (run_span,) = receiver.named("run undo")
        assert run_span.error and run_span.attributes["sagactl.outcome"] == "compensated"


class TestOff:
    def test_no_exporter_no_spans_no_import(self, cli: Cli, receiver: OtlpReceiver) -> None:
        """Without OTEL_EXPORTER_OTLP_ENDPOINT nothing is sent, and the process that ran
        the saga never imported OpenTelemetry."""
        path = cli.saga("chain", {"a": {}, "b": {"needs": ["a"]}})
        names = imported(cli, "run", "-q", str(path))
        assert not [n for n in names if n.startswith("opentelemetry")]
        time.sleep(0.2)
        assert receiver.received() == [] and receiver.requests == 0

    def test_endpoint_set_imports_and_exports(
        self, cli: Cli, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The same run with the endpoint set does import the SDK and exports its spans."""
        for name, value in otel_env(receiver.endpoint).items():
            monkeypatch.setenv(name, value)
        path = cli.saga("chain", {"a": {}, "b": {"needs": ["a"]}})
        names = imported(cli, "run", "-q", str(path))
        assert "opentelemetry.sdk.trace" in names
        assert len(attempt_spans(receiver)) == 2
