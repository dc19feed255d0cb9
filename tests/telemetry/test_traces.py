"""One trace per run, across processes: real `sagactl` processes export to a real OTLP/HTTP
receiver on loopback; SIGKILL, `resume`, and a worker takeover on PostgreSQL."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter

import pytest
from sagactl.engine.tracing import root_span_id_of, trace_id_of

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
        # The killed process's segment span never ended, so it was never exported: only
        # the resume's segment arrives, and the first process's attempts name a parent
        # that is not the resume's segment.
        (segment,) = receiver.named("saga chain")
        assert segment.parent_id == root
        assert segment.attributes["sagactl.entry_state"] == "running"
        assert segment.attributes["sagactl.outcome"] == "succeeded"
        (run_span,) = receiver.named("run chain")
        assert (run_span.span_id, run_span.parent_id) == (root, "")
        assert run_span.attributes["sagactl.outcome"] == "succeeded"

        attempts = attempt_spans(receiver)
        assert Counter(s.attributes["sagactl.action"] for s in attempts) == ended_attempts(
            cli.events(run_id)
        )
        by_action = {s.attributes["sagactl.action"]: s for s in attempts}
        # b's first attempt died with its process: only the second one has a span.
        assert by_action["b"].attributes["sagactl.attempt"] == 2
        assert by_action["b"].parent_id == by_action["c"].parent_id == segment.span_id
        assert by_action["a"].parent_id not in (segment.span_id, root, "")
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
