"""Run tracing with the OpenTelemetry SDK, configured by the standard `OTEL_*` variables.

Imported only when tracing is configured (`tracing.tracing_from_env`). The exporter is
OTLP over HTTP with protobuf; endpoint, headers, timeouts, sampler, batch sizes and the
service name all come from the SDK's own environment variables. A segment's parent is
the run's own span, whose trace and span ids are derived from the run id, so segments
written by different processes, before and after a crash, land in one trace.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
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

    def __init__(self, provider: TracerProvider, ids: _Ids, processor: SpanProcessor) -> None:
        self.provider = provider
        self._ids = ids
        self._processor = processor
        self.tracer = provider.get_tracer("sagactl")

    @classmethod
    def from_env(cls) -> OtelTracing:
        ids = _Ids()
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "sagactl"}
        provider = TracerProvider(resource=Resource.create(attributes), id_generator=ids)
        processor = BatchSpanProcessor(OTLPSpanExporter())
        provider.add_span_processor(processor)
        return cls(provider, ids, processor)

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
        return _Segment(self, span, saga, run_id)

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
    __slots__ = ("context", "outcome")

    def __init__(self, context: SpanContext) -> None:
        self.context = context
        self.outcome = "none"

    def succeeded(self) -> None:
        self.outcome = "succeeded"


class _ActionTracer:
    """`ctx.tracer`: the SDK tracer, whose spans default to children of the attempt running
    now (attempt spans are not made current: that would cost every attempt a context
    switch, for the few actions that open spans of their own)."""

    def __init__(self, tracer: trace.Tracer, live: dict[str, _Attempt], action: str) -> None:
        self._tracer = tracer
        self._live = live
        self._action = action

    def start_as_current_span(
        self, name: str, context: Context | None = None, **kwargs: Any
    ) -> AbstractContextManager[trace.Span]:
        attempt = self._live.get(self._action)
        if context is None and attempt is not None:
            current = trace.get_current_span().get_span_context()
            if current.trace_id != attempt.context.trace_id:  # not inside one of its spans
                context = trace.set_span_in_context(trace.NonRecordingSpan(attempt.context))
        return self._tracer.start_as_current_span(name, context=context, **kwargs)

    def start_span(self, name: str, context: Context | None = None, **kwargs: Any) -> trace.Span:
        attempt = self._live.get(self._action)
        if context is None and attempt is not None:
            current = trace.get_current_span().get_span_context()
            if current.trace_id != attempt.context.trace_id:
                context = trace.set_span_in_context(trace.NonRecordingSpan(attempt.context))
        return self._tracer.start_span(name, context=context, **kwargs)


class _Segment:
    """One process's part of one run.

    Attempt spans are written straight to the export pipeline as finished spans: an
    attempt is one object made when it ends, instead of a live SDK span (its locks, its
    context attached and detached), which keeps tracing's cost per action small."""

    def __init__(self, owner: OtelTracing, span: trace.Span, saga: str, run_id: str) -> None:
        self._owner = owner
        self._span = span
        self._parent = span.get_span_context()
        self._saga = saga
        self._run_id = run_id
        self._sampled = self._parent.trace_flags.sampled
        self._previous: dict[tuple[str, bool], SpanContext] = {}
        """(action, compensating) -> its last attempt's span here: a retry links to it."""
        self._live: dict[str, _Attempt] = {}
        """Action -> its attempt running now."""

    def tracer(self, action: str) -> Tracer:
        return _ActionTracer(self._owner.tracer, self._live, action)

    def attempt(
        self, action: str, attempt: int, key: str, *, compensating: bool
    ) -> AbstractContextManager[_Attempt]:
        return self._attempt(action, attempt, key, compensating)

    @contextmanager
    def _attempt(
        self, action: str, attempt: int, key: str, compensating: bool
    ) -> Iterator[_Attempt]:
        owner = self._owner
        context = SpanContext(
            self._parent.trace_id,
            owner._ids.generate_span_id(),
            is_remote=False,
            trace_flags=self._parent.trace_flags,
        )
        which = (action, compensating)
        previous = self._previous.get(which)
        self._previous[which] = context
        handle = self._live[action] = _Attempt(context)
        started = time_ns()
        events: list[Event] = []
        status = _OK
        try:
            yield handle
        except BaseException as exc:
            if isinstance(exc, Exception):
                handle.outcome = "failed"
                events.append(_exception_event(exc))
                status = Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
            else:  # cancelled (a sibling failed, an operator cancelled, the process stops)
                handle.outcome = "cancelled"
            raise
        finally:
            del self._live[action]
            if self._sampled:
                owner._processor.on_end(
                    ReadableSpan(
                        f"{'compensate' if compensating else 'action'} {action}",
                        context=context,
                        parent=self._parent,
                        resource=owner.provider.resource,
                        attributes={
                            "sagactl.saga": self._saga,
                            "sagactl.run_id": self._run_id,
                            "sagactl.action": action,
                            "sagactl.attempt": attempt,
                            "sagactl.idempotency_key": key,
                            "sagactl.compensating": compensating,
                            "sagactl.outcome": handle.outcome,
                        },
                        events=events,
                        links=[Link(previous, _RETRY)] if previous else (),
                        status=status,
                        start_time=started,
                        end_time=time_ns(),
                        instrumentation_scope=_SCOPE,
                    )
                )

    def end(self, state: str | None, error: BaseException | None = None) -> None:
        self._span.set_attribute("sagactl.outcome", state or "none")
        if isinstance(error, Exception):
            self._span.record_exception(error)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self._span.end()


_OK = Status(StatusCode.UNSET)
_RETRY = {"sagactl.link": "retry of"}
_SCOPE = InstrumentationScope("sagactl")


def _exception_event(exc: Exception) -> Event:
    """The event `Span.record_exception` would add."""
    return Event(
        "exception",
        {
            "exception.type": type(exc).__qualname__,
            "exception.message": str(exc),
            "exception.stacktrace": "".join(traceback.format_exception(exc)),
        },
    )
