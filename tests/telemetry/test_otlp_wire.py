"""The engine's own OTLP encoding, decoded with the official protobuf classes; the batcher
that sends it; the lost segment found in a log."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span
from sagactl.engine.events import Event, EventKind
from sagactl.engine.otlp_export import SpanBatcher
from sagactl.engine.otlp_wire import (
    Envelope,
    SpanWriter,
    attribute,
    delimited,
    error_status,
    event,
    link_to,
    string_attribute,
)
from sagactl.engine.scheduler.traced import lost_segment


def decoded(span: bytes) -> Span:
    """A span as `SpanWriter.span` encodes it (field 2 of `ScopeSpans`)."""
    (found,) = ScopeSpans.FromString(span).spans
    return found


def value(span: Span, key: str) -> object:
    (found,) = [a.value for a in span.attributes if a.key == key]
    kind = found.WhichOneof("value")
    return getattr(found, kind) if kind else None


class TestSpanWriter:
    def test_every_field_decodes(self) -> None:
        """Ids, parent, name, times, attributes of each type, an event, a link and an
        error status read back as written."""
        writer = SpanWriter(0xABC, 0x123, {"sagactl.saga": "s", "sagactl.run_id": "r"})
        retry_of = link_to(writer.trace_id, {"sagactl.link": "retry of"})
        own = b"".join(
            attribute(9, k, v)
            for k, v in {"i": 7, "neg": -3, "big": 2**40, "t": True, "f": False, "x": 1.5}.items()
        )
        extra = event(150, "exception", {"exception.type": "E"}) + retry_of(0x77)
        span = decoded(writer.span(0x55, delimited(5, "action é".encode()), 100, 200, own, extra))
        assert span.trace_id == (0xABC).to_bytes(16, "big")
        assert span.span_id == (0x55).to_bytes(8, "big")
        assert span.parent_span_id == (0x123).to_bytes(8, "big")
        assert (span.name, span.start_time_unix_nano, span.end_time_unix_nano) == (
            "action é",
            100,
            200,
        )
        assert span.kind == Span.SpanKind.SPAN_KIND_INTERNAL
        assert [a.key for a in span.attributes] == [
            "sagactl.saga",
            "sagactl.run_id",
            *("i", "neg", "big", "t", "f", "x"),
        ]
        assert [value(span, k) for k in ("i", "neg", "big", "t", "f", "x")] == [
            7,
            -3,
            2**40,
            True,
            False,
            1.5,
        ]
        (happened,) = span.events
        assert (happened.name, happened.time_unix_nano) == ("exception", 150)
        (linked,) = span.links
        assert linked.span_id == (0x77).to_bytes(8, "big") and linked.trace_id == span.trace_id
        assert linked.attributes[0].value.string_value == "retry of"
        assert span.status.code == 0  # unset

    def test_error_status_root_span_and_another_parent(self) -> None:
        writer = SpanWriter(1, None, {})
        span = decoded(writer.span(2, delimited(5, b"run"), 1, 2, b"", error_status("lost")))
        assert span.parent_span_id == b""
        assert (span.status.code, span.status.message) == (2, "lost")
        moved = decoded(writer.under(9).span(3, delimited(5, b"x"), 1, 2, b""))
        assert moved.parent_span_id == (9).to_bytes(8, "big")
        assert moved.trace_id == span.trace_id

    @pytest.mark.parametrize("text", ["", "k", "y" * 98, "y" * 99, "é" * 300, "x" * 20_000])
    def test_string_attribute_is_attribute(self, text: str) -> None:
        """The key-cached encoder writes exactly what the general one does (lengths that
        take one, two and three varint bytes; the attribute just fitting one byte or not)."""
        assert string_attribute(9, "sagactl.idempotency_key")(text) == attribute(
            9, "sagactl.idempotency_key", text
        )

    @pytest.mark.parametrize("size", [0, 60, 70, 16_000, 16_500])
    def test_span_lengths_of_one_two_and_three_bytes(self, size: int) -> None:
        """A span whose encoding is shorter than 128 bytes, 128 to 16,383, or longer."""
        writer = SpanWriter(1, 2, {})
        extra = attribute(9, "pad", "p" * size)
        span = decoded(writer.span(3, delimited(5, b"n"), 10, 20, extra))
        assert value(span, "pad") == "p" * size and span.end_time_unix_nano == 20

    def test_requests_concatenate(self) -> None:
        """Two requests in one body are one request with both batches."""
        envelope = Envelope({"service.name": "svc", "n": 3}, "sagactl")
        writer = SpanWriter(1, None, {})
        spans = [writer.span(i, delimited(5, b"s"), 1, 2, b"") for i in (1, 2, 3)]
        body = envelope.request(spans[:2]) + envelope.request(spans[2:])
        request = ExportTraceServiceRequest.FromString(body)
        assert [len(r.scope_spans[0].spans) for r in request.resource_spans] == [2, 1]
        first = request.resource_spans[0]
        assert first.scope_spans[0].scope.name == "sagactl"
        assert {a.key: a.value for a in first.resource.attributes}["n"].int_value == 3


class TestSpanBatcher:
    def test_batches_by_size_then_flush_sends_the_rest(self) -> None:
        """Three spans per request; `flush` sends what is left; order is kept."""
        sent: list[list[int]] = []
        posted = threading.Event()

        def post(body: bytes) -> None:
            request = ExportTraceServiceRequest.FromString(body)
            ids = request.resource_spans[0].scope_spans[0].spans
            sent.append([int.from_bytes(s.span_id, "big") for s in ids])
            posted.set()

        batcher = SpanBatcher(post, Envelope({}, "t"), delay=3600, batch=3, queue=100)
        writer = SpanWriter(1, None, {})
        try:
            for i in range(1, 5):
                batcher.add(writer.span(i, delimited(5, b"s"), 1, 2, b""))
            assert posted.wait(10)
            batcher.flush()
        finally:
            batcher.shutdown()
        assert sent == [[1, 2, 3], [4]]

    def test_a_full_queue_drops_the_oldest_and_a_failing_post_is_survived(self) -> None:
        sent: list[int] = []

        def post(body: bytes) -> None:
            request = ExportTraceServiceRequest.FromString(body)
            sent.extend(len(r.scope_spans[0].spans) for r in request.resource_spans)
            if len(sent) == 1:
                raise OSError("the collector is away")

        batcher = SpanBatcher(post, Envelope({}, "t"), delay=3600, batch=1000, queue=2)
        writer = SpanWriter(1, None, {})
        try:
            for i in range(1, 6):
                batcher.add(writer.span(i, delimited(5, b"s"), 1, 2, b""))
            batcher.flush()  # fails: logged, the spans are gone
            batcher.add(writer.span(9, delimited(5, b"s"), 1, 2, b""))
            batcher.flush()
        finally:
            batcher.shutdown()
        assert sent == [2, 1]

    def test_send_soon_posts_a_lone_span_at_once(self) -> None:
        """`send_soon` has the thread post without a full batch or the delay passing."""
        posted = threading.Event()
        batcher = SpanBatcher(
            lambda body: posted.set(), Envelope({}, "t"), delay=3600, batch=1000, queue=100
        )
        try:
            batcher.add(SpanWriter(1, None, {}).span(1, delimited(5, b"s"), 1, 2, b""))
            assert not posted.wait(0.2)  # no batch, no delay yet: nothing sent
            batcher.send_soon()
            assert posted.wait(10)
        finally:
            batcher.shutdown()

    def test_pending_spans_are_encoded_by_the_exporter_in_order(self) -> None:
        """A span queued as a record is encoded once, when the thread takes its batch,
        in the order spans were queued, bytes and records alike."""
        encoders: list[str] = []
        sent: list[list[int]] = []
        posted = threading.Event()
        writer = SpanWriter(1, None, {})

        class Record:
            def __init__(self, span_id: int) -> None:
                self.span_id = span_id

            def encoded(self) -> bytes:
                encoders.append(threading.current_thread().name)
                return writer.span(self.span_id, delimited(5, b"s"), 1, 2, b"")

        def post(body: bytes) -> None:
            request = ExportTraceServiceRequest.FromString(body)
            ids = request.resource_spans[0].scope_spans[0].spans
            sent.append([int.from_bytes(s.span_id, "big") for s in ids])
            posted.set()

        batcher = SpanBatcher(post, Envelope({}, "t"), delay=3600, batch=3, queue=100)
        try:
            batcher.add(Record(1))
            batcher.add(writer.span(2, delimited(5, b"s"), 1, 2, b""))
            assert encoders == []  # recorded only
            batcher.add(Record(3))
            assert posted.wait(10)
        finally:
            batcher.shutdown()
        assert sent == [[1, 2, 3]]
        assert encoders == ["sagactl-spans", "sagactl-spans"]


def opening(kind: EventKind, at: float, **data: object) -> Event:
    return Event("r", kind, None, {"state": "running", **data}, at)


class TestLostSegment:
    def test_from_its_opening_record_to_the_last_record(self) -> None:
        log = [
            opening(EventKind.RUN_STARTED, 1.0, segment=1),
            Event("r", EventKind.ACTION_STARTED, "a", {}, 2.0),
            opening(EventKind.RUN_RESUMED, 3.0, segment=3, owner="o"),
            Event("r", EventKind.ACTION_SUCCEEDED, "a", {}, 4.0),
        ]
        assert lost_segment(log, 3) == (3.0, 4.0)

    def test_none_when_that_claim_opened_no_segment(self) -> None:
        """A claim that drove nothing (an `unpause` left to workers, a pause) wrote no
        opening record with its number: there is no span to rebuild."""
        log = [
            opening(EventKind.RUN_STARTED, 1.0, segment=1),
            opening(EventKind.RUN_RESUMED, 2.0, owner="o"),  # unpause, to the workers
        ]
        assert lost_segment(log, 2) is None
        assert lost_segment([], 1) is None
