"""Run tracing with the OpenTelemetry SDK, configured by the standard `OTEL_*` variables.

Imported only when tracing is configured (the engine calls `tracing_from_env` below).
The exporter is the SDK's OTLP over HTTP with protobuf: endpoint, headers, timeout,
compression, sampler, batch sizes and the service name all come from its environment
variables. A segment's parent is the run's own span, whose trace and span ids are
derived from the run id, so segments written by different processes, before and after a
crash, land in one trace; a segment's own id derives from the run id and its number.

The engine's spans (run, segments, attempts) are written as OTLP bytes directly
(`otlp_wire`) and batched by `otlp_export`: no SDK span object, lock or context switch
per attempt, and no protobuf object per attribute. The engine's thread only records a
span (times, outcome: `_Attempt`, `_Segment`, `_RunSpan`); the exporter thread derives
its ids and encodes it with its batch, where the encoder's code stays in the caches.
Spans actions open with `ctx.tracer` are ordinary SDK spans, children of their attempt's
span.
"""

from __future__ import annotations

import functools
import os
import random
import traceback
from collections.abc import Callable, Mapping
from time import time_ns
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from .otlp_export import SpanBatcher
from .otlp_wire import (
    AttributeValue,
    Envelope,
    SpanWriter,
    attribute,
    attributes,
    delimited,
    error_status,
    event,
    link_to,
    string_attribute,
)
from .tracing import (
    NOOP_TRACER,
    RunTracing,
    Segment,
    Tracer,
    root_span_id_of,
    segment_span_id_of,
    trace_id_of,
    tracing_configured,
)

_NS = 1_000_000_000
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
SCOPE = "sagactl"


def _run_context(trace_id: int, run_id: str) -> Context:
    """A context whose current span is the run's own (remote, sampled) span."""
    parent = SpanContext(trace_id, root_span_id_of(run_id), is_remote=True, trace_flags=_SAMPLED)
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def _poster(exporter: OTLPSpanExporter) -> Any:
    """How encoded requests reach the endpoint: through the SDK exporter's own HTTP client
    (its endpoint, headers, compression, TLS, timeout and retries), which takes bytes."""
    client = getattr(exporter, "_client", None)
    if client is None or not callable(getattr(client, "export", None)):
        raise RuntimeError(
            "this opentelemetry-exporter-otlp-proto-http has no byte-level client"
            " (sagactl needs 1.40 or later)"
        )
    return client.export


class OtelTracing:
    """`RunTracing` over an SDK tracer provider of its own (the global one is left alone)."""

    def __init__(self, provider: TracerProvider, spans: SpanBatcher) -> None:
        self.provider = provider
        self.spans = spans
        self.tracer = provider.get_tracer(SCOPE)
        keeps_all: tuple[Any, ...] = (ParentBased(ALWAYS_ON), ALWAYS_ON)
        sampler: Any = provider.sampler
        self._all = any(sampler.get_description() == s.get_description() for s in keeps_all)
        """The sampler keeps every span (the default): no decision to make per run."""

    @classmethod
    def from_env(cls) -> OtelTracing:
        attrs = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "sagactl"}
        resource = Resource.create(attrs)
        provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))  # spans from `ctx.tracer`
        envelope = Envelope(_scalars(resource.attributes), SCOPE)
        return cls(provider, SpanBatcher.from_env(_poster(exporter), envelope))

    def _sampled(self, trace_id: int, run_id: str, name: str, parent: bool) -> bool:
        """The configured sampler's decision (one that keeps all is not asked: `_all`)."""
        context = _run_context(trace_id, run_id) if parent else None
        decision = self.provider.sampler.should_sample(context, trace_id, name, SpanKind.INTERNAL)
        return bool(decision.decision.is_sampled())  # type: ignore[no-untyped-call]

    def segment(self, run_id: str, saga: str, entry_state: str | None, number: int) -> Segment:
        if self._all:  # the ids are derived by the exporter, off the engine's thread
            return _Segment(self, run_id, saga, entry_state, number)
        trace_id = int(trace_id_of(run_id), 16)
        if not self._sampled(trace_id, run_id, f"saga {saga}", parent=True):
            return _UNSAMPLED
        return _Segment(self, run_id, saga, entry_state, number, trace_id)

    def lost(self, run_id: str, saga: str, number: int, started: float, ended: float) -> None:
        trace_id = int(trace_id_of(run_id), 16)
        if not self._all and not self._sampled(trace_id, run_id, f"saga {saga}", parent=True):
            return
        writer = SpanWriter(trace_id, root_span_id_of(run_id), _common(saga, run_id))
        extra = {"sagactl.segment": number, "sagactl.recovered": True}
        self.spans.add(
            writer.span(
                segment_span_id_of(run_id, number),
                delimited(5, f"saga {saga}".encode()),
                int(started * _NS),
                int(max(started, ended) * _NS),
                attributes(9, extra),
                error_status("process lost"),
            )
        )
        # Nothing but this process has it now: were it to die within the batch delay, the
        # span would be lost (the next taker rebuilds only its predecessor's segment).
        self.spans.send_soon()

    def finished(self, run_id: str, saga: str, state: str, started: float, ended: float) -> None:
        if not self._all:
            trace_id = int(trace_id_of(run_id), 16)
            if not self._sampled(trace_id, run_id, f"run {saga}", parent=False):
                return
        self.spans.add(_RunSpan(run_id, saga, state, started, ended))

    def flush(self) -> None:
        self.spans.flush()
        self.provider.force_flush()


def _common(saga: str, run_id: str) -> dict[str, AttributeValue]:
    """The attributes every span of a run carries."""
    return {"sagactl.saga": saga, "sagactl.run_id": run_id}


def _scalars(values: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Resource attributes as OTLP scalars (a sequence, rare there, as its text)."""
    return {
        k: v if isinstance(v, str | bool | int | float) else ",".join(map(str, v))
        for k, v in values.items()
    }


def _error(exc: Exception, at: int) -> bytes:
    """The exception event `Span.record_exception` adds, and the error status."""
    message = f"{type(exc).__name__}: {exc}"
    happened = {
        "exception.type": type(exc).__qualname__,
        "exception.message": str(exc),
        "exception.stacktrace": "".join(traceback.format_exception(exc)),
    }
    return event(at, "exception", happened) + error_status(message)


@functools.cache
def _entry_state(state: str) -> bytes:
    return attribute(9, "sagactl.entry_state", state)


@functools.lru_cache(maxsize=4096)
def _named(action: str, compensating: bool) -> bytes:
    """An attempt span's encoded name, action and compensating attributes (the same in
    every run)."""
    verb = "compensate" if compensating else "action"
    name = delimited(5, f"{verb} {action}".encode())
    return name + attribute(9, "sagactl.action", action) + _COMPENSATING[compensating]


@functools.cache
def _outcome(state: str) -> bytes:
    return attribute(9, "sagactl.outcome", state)


def _pid() -> bytes:
    """This process's id as an attribute (encoded once per process)."""
    return _pid_attribute(os.getpid())


@functools.cache
def _pid_attribute(pid: int) -> bytes:
    return attribute(9, "sagactl.pid", pid)


_COMPENSATING = {c: attribute(9, "sagactl.compensating", c) for c in (False, True)}
_ATTEMPTS = [attribute(9, "sagactl.attempt", n) for n in range(16)]
_OUTCOMES = {o: attribute(9, "sagactl.outcome", o) for o in ("succeeded", "failed", "cancelled")}
_RETRY = {"sagactl.link": "retry of"}
_KEY = string_attribute(9, "sagactl.idempotency_key")


class _Attempt:
    """The span of one attempt (`with segment.attempt(...)`): the engine's thread only
    records it; the exporter encodes it (`encoded`) with its batch."""

    __slots__ = (
        "_span_id",
        "action",
        "attempt",
        "compensating",
        "end",
        "extra",
        "key",
        "outcome",
        "segment",
        "start",
    )

    def __init__(
        self, segment: _Segment, action: str, attempt: int, key: str, compensating: bool
    ) -> None:
        self.segment = segment
        self.action = action
        self.attempt = attempt
        self.key = key
        self.compensating = compensating
        self.outcome = "none"
        self._span_id = 0
        self.start = 0
        self.end = 0
        self.extra = b""
        """The exception event and error status, encoded (a failed attempt)."""

    @property
    def span_id(self) -> int:
        """Drawn on first use: by an action's own span while it runs, else by the exporter
        once it has ended (never by both threads at once)."""
        if not self._span_id:
            self._span_id = random.getrandbits(64) or 1
        return self._span_id

    def succeeded(self) -> None:
        self.outcome = "succeeded"

    def __enter__(self) -> _Attempt:
        self.segment.live[self.action] = self
        self.start = time_ns()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end = end = time_ns()
        segment = self.segment
        del segment.live[self.action]
        if exc is not None:
            if isinstance(exc, Exception):
                self.outcome = "failed"
                self.extra = _error(exc, end)  # now: kept, the exception would hold frames
            else:  # cancelled (a sibling failed, an operator cancelled, the process stops)
                self.outcome = "cancelled"
        segment.add(self)

    def encoded(self) -> bytes:
        return self.segment.attempt_span(self)


class _ActionTracer:
    """`ctx.tracer`: the SDK tracer, whose spans default to children of the action's attempt
    running now (attempt spans are never made current: that would cost every attempt a
    context switch, for the few actions that open spans of their own)."""

    __slots__ = ("_action", "_segment", "_tracer")

    def __init__(self, tracer: trace.Tracer, segment: _Segment, action: str) -> None:
        self._tracer = tracer
        self._segment = segment
        self._action = action

    def _context(self, context: Context | None) -> Context | None:
        if context is not None:
            return context
        attempt = self._segment.live.get(self._action)
        if attempt is None:
            return None
        trace_id = self._segment.trace_id
        if trace.get_current_span().get_span_context().trace_id == trace_id:
            return None  # inside one of its spans already: the SDK's default is right
        parent = SpanContext(trace_id, attempt.span_id, is_remote=False, trace_flags=_SAMPLED)
        return trace.set_span_in_context(trace.NonRecordingSpan(parent))

    def start_as_current_span(
        self, name: str, context: Context | None = None, **kwargs: Any
    ) -> Any:
        return self._tracer.start_as_current_span(name, context=self._context(context), **kwargs)

    def start_span(self, name: str, context: Context | None = None, **kwargs: Any) -> Any:
        return self._tracer.start_span(name, context=self._context(context), **kwargs)


class _Segment:
    """One process's part of one run: its span, and its attempts' spans.

    The engine's thread records times and outcomes; ids, attributes and links are derived
    and encoded by the exporter (`attempt_span`, `encoded`), which takes the spans in the
    order they ended, one at a time."""

    def __init__(
        self,
        owner: OtelTracing,
        run_id: str,
        saga: str,
        entry_state: str | None,
        number: int,
        trace_id: int = 0,
    ) -> None:
        self._owner = owner
        self.add = owner.spans.add
        self._trace_id = trace_id
        self._run_id = run_id
        self._saga = saga
        self._number = number
        self._entry = entry_state or "new"
        self._start = time_ns()
        self._end = 0
        self._state = "none"
        self._error = b""
        self.live: dict[str, _Attempt] = {}
        """Action -> its attempt running now."""
        self._tracers: dict[str, Tracer] = {}
        # The exporter's: made at the first span encoded.
        self._writer: SpanWriter | None = None
        self._retry_of: Callable[[int], bytes] | None = None
        """Encodes the link of a retry to the attempt before (made at the first retry)."""
        self._previous: dict[tuple[str, bool], int] = {}
        """(action, compensating) -> its last attempt's span here: a retry links to it."""

    @property
    def trace_id(self) -> int:
        if not self._trace_id:  # both threads may derive it: the same value
            self._trace_id = int(trace_id_of(self._run_id), 16)
        return self._trace_id

    def tracer(self, action: str) -> Tracer:
        found = self._tracers.get(action)
        if found is None:
            found = self._tracers[action] = _ActionTracer(self._owner.tracer, self, action)
        return found

    def attempt(self, action: str, attempt: int, key: str, *, compensating: bool) -> _Attempt:
        return _Attempt(self, action, attempt, key, compensating)

    def end(self, state: str | None, error: BaseException | None = None) -> None:
        self._end = end = time_ns()
        self._state = state or "none"
        if isinstance(error, Exception):
            self._error = _error(error, end)
        self.add(self)

    # -- the exporter's side --------------------------------------------------------------

    def _attempts(self) -> SpanWriter:
        writer = self._writer
        if writer is None:
            own = segment_span_id_of(self._run_id, self._number)
            common = _common(self._saga, self._run_id)
            writer = self._writer = SpanWriter(self.trace_id, own, common)
        return writer

    def attempt_span(self, attempt: _Attempt) -> bytes:
        """An ended attempt's span, encoded."""
        writer = self._writer or self._attempts()
        action, compensating = attempt.action, attempt.compensating
        # Its id, unless an action's span took it already: no one else will ask.
        span_id = attempt._span_id or random.getrandbits(64) or 1
        extra = attempt.extra
        which = (action, compensating)
        previous = self._previous.get(which)
        self._previous[which] = span_id
        if previous is not None:
            if self._retry_of is None:
                self._retry_of = link_to(writer.trace_id, _RETRY)
            extra += self._retry_of(previous)
        n = attempt.attempt
        return writer.span(
            span_id,
            _named(action, compensating),
            attempt.start,
            attempt.end,
            b"".join(
                (
                    _ATTEMPTS[n] if 0 <= n < 16 else attribute(9, "sagactl.attempt", n),
                    _KEY(attempt.key),
                    _OUTCOMES.get(attempt.outcome) or _outcome(attempt.outcome),
                )
            ),
            extra,
        )

    def encoded(self) -> bytes:
        """The segment's own span, once it has ended."""
        own = b"".join(
            (
                _entry_state(self._entry),
                attribute(9, "sagactl.segment", self._number),
                _pid(),
                _outcome(self._state),
            )
        )
        return (
            self._attempts()
            .under(root_span_id_of(self._run_id))
            .span(
                segment_span_id_of(self._run_id, self._number),
                delimited(5, f"saga {self._saga}".encode()),
                self._start,
                self._end,
                own,
                self._error,
            )
        )


class _RunSpan:
    """The run's own span, recorded when the run is over, encoded by the exporter."""

    __slots__ = ("ended", "run_id", "saga", "started", "state")

    def __init__(self, run_id: str, saga: str, state: str, started: float, ended: float) -> None:
        self.run_id = run_id
        self.saga = saga
        self.state = state
        self.started = started
        self.ended = ended

    def encoded(self) -> bytes:
        run_id, state = self.run_id, self.state
        writer = SpanWriter(int(trace_id_of(run_id), 16), None, _common(self.saga, run_id))
        return writer.span(
            root_span_id_of(run_id),
            delimited(5, f"run {self.saga}".encode()),
            int(self.started * _NS),
            int(max(self.started, self.ended) * _NS),
            _outcome(state),
            b"" if state == "succeeded" else error_status(state),
        )


class _Unsampled:
    """A segment the sampler left out: nothing is recorded."""

    def tracer(self, action: str) -> Tracer:
        return NOOP_TRACER

    def attempt(self, action: str, attempt: int, key: str, *, compensating: bool) -> _Nothing:
        return _NOTHING

    def end(self, state: str | None, error: BaseException | None = None) -> None:
        return None


class _Nothing:
    __slots__ = ()

    def succeeded(self) -> None:
        return None

    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NOTHING = _Nothing()
_UNSAMPLED = _Unsampled()


def tracing_from_env() -> RunTracing | None:
    """The process's run tracing when the OpenTelemetry variables configure an exporter;
    None otherwise."""
    if not tracing_configured():
        return None
    return OtelTracing.from_env()
