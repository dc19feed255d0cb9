"""Traces of runs: the engine's side, which never imports OpenTelemetry.

A run has one trace, whatever process drives it: its id is derived from the run id
(`trace_id_of`, stored with the run), so the first process, a `resume` and a worker that
took the run over all add their spans to the same trace. Each process that drives a run
opens a *segment* span; each attempt of an action and each compensation attempt is a
child span of it. A segment's span id derives from the run id and its number (the fence
of the claim that drove it, kept in the log), so when a process is lost before it could
export its segment's span, the process that takes the run over exports it from the log.

Tracing is on when the standard OpenTelemetry variables name an exporter endpoint
(`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Otherwise the
scheduler holds no tracer at all (`Options.tracing` is None: one `is None` test per
attempt) and OpenTelemetry is never imported; `ctx.tracer` is then `NOOP_TRACER`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def _sha256(text: str) -> bytes:
    import hashlib  # not at import: the commands that only read runs never hash

    return hashlib.sha256(text.encode()).digest()


def trace_id_of(run_id: str) -> str:
    """The run's trace id: 32 hex digits derived from the run id (never all zeros)."""
    digest = _sha256(f"sagactl/trace/{run_id}").hex()
    return digest[:32] if int(digest[:32], 16) else digest[32:]


def root_span_id_of(run_id: str) -> int:
    """The id of the run's own span, parent of every segment (16 hex digits, not 0)."""
    digest = _sha256(f"sagactl/span/{run_id}")
    return int.from_bytes(digest[:8], "big") or 1


def segment_span_id_of(run_id: str, segment: int) -> int:
    """The span id of a run's segment `segment` (the fence of the claim that drove it,
    recorded in the log as `segment` of the record opening it): whoever reads the log
    can name the span of a segment whose process died before exporting it."""
    digest = _sha256(f"sagactl/segment/{run_id}/{segment}")
    return int.from_bytes(digest[:8], "big") or 1


def tracing_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the OpenTelemetry variables ask for traces to be exported."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


# -- what actions see: `ctx.tracer` -------------------------------------------------------


class Span(Protocol):
    """The part of an OpenTelemetry span an action uses."""

    def set_attribute(self, key: str, value: Any) -> Any: ...

    def add_event(self, name: str, attributes: Any = None) -> Any: ...

    def record_exception(self, exception: BaseException) -> Any: ...

    def end(self, end_time: int | None = None) -> Any: ...


class Tracer(Protocol):
    """`ctx.tracer`: an OpenTelemetry tracer, or a no-op one when tracing is off."""

    def start_as_current_span(
        self, name: str, *args: Any, **kwargs: Any
    ) -> AbstractContextManager[Any]: ...

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """A span that is not made current (e.g. opened and ended from other threads)."""
        ...


class _NoopSpan:
    __slots__ = ()

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def add_event(self, name: str, attributes: Any = None) -> None:
        return None

    def record_exception(self, exception: BaseException) -> None:
        return None

    def end(self, end_time: int | None = None) -> None:
        return None


_NOOP_SPAN = _NoopSpan()


class NoopTracer:
    """What `ctx.tracer` is when tracing is off: spans that record nothing."""

    __slots__ = ()

    @contextmanager
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[_NoopSpan]:
        yield _NOOP_SPAN

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> _NoopSpan:
        return _NOOP_SPAN


NOOP_TRACER = NoopTracer()


# -- what the scheduler uses ---------------------------------------------------------------


class AttemptSpan(Protocol):
    """The span of one attempt while it runs."""

    def succeeded(self) -> None: ...


class Segment(Protocol):
    """The span of one process driving one run, and its attempts' spans."""

    def tracer(self, action: str) -> Tracer:
        """`ctx.tracer` of `action`: its spans are children of the action's attempt."""
        ...

    def attempt(
        self, action: str, attempt: int, key: str, *, compensating: bool
    ) -> AbstractContextManager[AttemptSpan]:
        """A span around one attempt: outcome `succeeded` once `succeeded()` is called,
        `cancelled` or `failed` (the error recorded) when the block raises."""
        ...

    def end(self, state: str | None, error: BaseException | None = None) -> None:
        """Close the segment with the state the run reached here."""
        ...


class RunTracing(Protocol):
    """Opens the segment spans of the runs this process drives."""

    def segment(self, run_id: str, saga: str, entry_state: str | None, number: int) -> Segment:
        """The span of segment `number` (the claim's fence) of the run, starting now."""
        ...

    def lost(self, run_id: str, saga: str, number: int, started: float, ended: float) -> None:
        """Export the span of segment `number`, whose process was lost before it could,
        as the log shows it: from the record that opened it to the log's last record."""
        ...

    def finished(self, run_id: str, saga: str, state: str, started: float, ended: float) -> None:
        """Record the run's own span (the parent of its segments) once it is over."""
        ...

    def flush(self) -> None:
        """Export what is buffered now (before a deliberate crash, at exit)."""
        ...
