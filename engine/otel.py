"""Run tracing with the OpenTelemetry SDK, configured by the standard `OTEL_*` variables.

Imported only when tracing is configured (`tracing.tracing_from_env`). The exporter is
OTLP over HTTP with protobuf; endpoint, headers, timeouts, sampler, batch sizes and the
service name all come from the SDK's own environment variables. A segment's parent is
the run's own span, whose trace and span ids are derived from the run id, so segments
written by different processes, before and after a crash, land in one trace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .tracing import Segment, Tracer, root_span_id_of, trace_id_of

_NS = 1_000_000_000


class _Ids(RandomIdGenerator):
    """Random ids, except for the one span whose ids are given (the run's own span)."""

    def __init__(self) -> None:
        self.given: tuple[int, int] | None = None

    def generate_trace_id(self) -> int:
        return self.given[0] if self.given else super().generate_trace_id()

    def generate_span_id(self) -> int:
        return self.given[1] if self.given else super().generate_span_id()


def _run_context(run_id: str) -> Context:
    """A context whose current span is the run's own (remote, sampled) span."""
    parent = SpanContext(
        trace_id=int(trace_id_of(run_id), 16),
        span_id=root_span_id_of(run_id),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


class OtelTracing:
    """`RunTracing` over an SDK tracer provider of its own (the global one is left alone)."""

    def __init__(self, provider: TracerProvider, ids: _Ids) -> None:
        self.provider = provider
        self._ids = ids
        self.tracer = provider.get_tracer("sagactl")

    @classmethod
    def from_env(cls) -> OtelTracing:
        ids = _Ids()
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "sagactl"}
        provider = TracerProvider(resource=Resource.create(attributes), id_generator=ids)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider, ids)

    def segment(self, run_id: str, saga: str, entry_state: str | None) -> Segment:
        span = self.tracer.start_span(
            f"saga {saga}",
            context=_run_context(run_id),
            kind=SpanKind.INTERNAL,
            attributes={
                "sagactl.saga": saga,
                "sagactl.run_id": run_id,
                "sagactl.entry_state": entry_state or "new",
                "sagactl.pid": os.getpid(),
            },
        )
        return _Segment(self.tracer, span, saga, run_id)

    def finished(self, run_id: str, saga: str, state: str, started: float, ended: float) -> None:
        self._ids.given = (int(trace_id_of(run_id), 16), root_span_id_of(run_id))
        try:
            span = self.tracer.start_span(
                f"run {saga}",
                context=Context(),
                kind=SpanKind.INTERNAL,
                attributes={
                    "sagactl.saga": saga,
                    "sagactl.run_id": run_id,
                    "sagactl.outcome": state,
                },
                start_time=int(started * _NS),
            )
        finally:
            self._ids.given = None
        if state != "succeeded":
            span.set_status(Status(StatusCode.ERROR, state))
        span.end(end_time=int(max(started, ended) * _NS))

    def flush(self) -> None:
        self.provider.force_flush()


class _Attempt:
    __slots__ = ("span",)

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def succeeded(self) -> None:
        self.span.set_attribute("sagactl.outcome", "succeeded")


class _Segment:
    """One process's part of one run."""

    def __init__(self, tracer: trace.Tracer, span: trace.Span, saga: str, run_id: str) -> None:
        self._tracer = tracer
        self._span = span
        self._context = trace.set_span_in_context(span)
        self._saga = saga
        self._run_id = run_id
        self._previous: dict[tuple[str, bool], SpanContext] = {}
        """(action, compensating) -> its last attempt's span here: a retry links to it."""

    @property
    def tracer(self) -> Tracer:
        return self._tracer

    def attempt(
        self, action: str, attempt: int, key: str, *, compensating: bool
    ) -> AbstractContextManager[_Attempt]:
        return self._attempt(action, attempt, key, compensating)

    @contextmanager
    def _attempt(
        self, action: str, attempt: int, key: str, compensating: bool
    ) -> Iterator[_Attempt]:
        which = (action, compensating)
        previous = self._previous.get(which)
        span = self._tracer.start_span(
            f"{'compensate' if compensating else 'action'} {action}",
            context=self._context,
            links=[Link(previous, {"sagactl.link": "retry of"})] if previous else None,
            attributes={
                "sagactl.saga": self._saga,
                "sagactl.run_id": self._run_id,
                "sagactl.action": action,
                "sagactl.attempt": attempt,
                "sagactl.idempotency_key": key,
                "sagactl.compensating": compensating,
            },
        )
        self._previous[which] = span.get_span_context()
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                yield _Attempt(span)
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            span.end()

    def end(self, state: str | None, error: BaseException | None = None) -> None:
        self._span.set_attribute("sagactl.outcome", state or "none")
        if error is not None:
            _failed(self._span, error)
        self._span.end()


def _failed(span: trace.Span, exc: BaseException) -> None:
    if isinstance(exc, Exception):
        span.set_attribute("sagactl.outcome", "failed")
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    else:  # cancelled (a sibling failed, an operator cancelled, the process stops)
        span.set_attribute("sagactl.outcome", "cancelled")
