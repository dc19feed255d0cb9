"""The OTLP protobuf encoding of the engine's own spans, written directly as wire bytes.

The SDK's encoder builds a protobuf object per span, attribute and value (about 70 us a
span here); an attempt span is a handful of fields whose attribute encodings repeat
(saga, run id, action, outcome), so `SpanWriter` encodes each once and a span costs a
few concatenations. The messages are `opentelemetry/proto/trace/v1/trace.proto`'s; the
tests decode them with the official `opentelemetry-proto` classes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence

AttributeValue = str | bool | int | float

KIND_INTERNAL = 1
STATUS_ERROR = 2
_SAMPLED_FLAGS = b"\x85\x01\x01\x00\x00\x00"  # field 16 (fixed32): trace flags, sampled


_SMALL = [bytes((n,)) for n in range(0x80)]
_TIMES = struct.Struct("<BQBQ")
"""A span's start and end: each a tag byte and a fixed64."""


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def delimited(field: int, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes or an embedded message."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _fixed64(field: int, n: int) -> bytes:
    return _tag(field, 1) + struct.pack("<Q", n)


def _any_value(value: AttributeValue) -> bytes:
    if isinstance(value, bool):  # before int: a bool is an int
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return _tag(3, 0) + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int64: two's complement
    if isinstance(value, float):
        return _tag(4, 1) + struct.pack("<d", value)
    return delimited(1, str(value).encode())


def key_value(key: str, value: AttributeValue) -> bytes:
    """One `KeyValue`, without its field tag."""
    return delimited(1, key.encode()) + delimited(2, _any_value(value))


def attribute(field: int, key: str, value: AttributeValue) -> bytes:
    """An attribute as the repeated `KeyValue` field `field` of its message."""
    return delimited(field, key_value(key, value))


def string_attribute(field: int, key: str) -> Callable[[str], bytes]:
    """`attribute(field, key, value)` for string values, the key encoded once."""
    head = delimited(1, key.encode())
    tag = _varint(field << 3 | 2)
    around = len(head) + 4  # the pair's bytes besides the text, when lengths take one byte
    small = _SMALL

    def encoded(value: str) -> bytes:
        text = value.encode()
        n = len(text)
        if n + around < 0x80:  # every length one byte: one join (the usual key)
            return b"".join(
                (tag, small[n + around], head, b"\x12", small[n + 2], b"\x0a", small[n], text)
            )
        any_value = b"\x0a" + _varint(n) + text
        pair = b"".join((head, b"\x12", _varint(len(any_value)), any_value))
        return tag + _varint(len(pair)) + pair

    return encoded


def attributes(field: int, values: Mapping[str, AttributeValue]) -> bytes:
    return b"".join(attribute(field, k, v) for k, v in values.items())


def event(time_ns: int, name: str, values: Mapping[str, AttributeValue]) -> bytes:
    """A span's `Event` (field 11 of `Span`)."""
    return delimited(11, _fixed64(1, time_ns) + delimited(2, name.encode()) + attributes(3, values))


def link(trace_id: bytes, span_id: int, values: Mapping[str, AttributeValue]) -> bytes:
    """A span's `Link` (field 13 of `Span`) to a span of the same trace."""
    return link_to(trace_id, values)(span_id)


def link_to(trace_id: bytes, values: Mapping[str, AttributeValue]) -> Callable[[int], bytes]:
    """`link` for many span ids of one trace with the same attributes, encoded once."""
    head = delimited(1, trace_id) + b"\x12\x08"  # then field 2, 8 bytes: the span id
    tail = attributes(4, values)
    prefix = b"\x6a" + _varint(len(head) + 8 + len(tail)) + head  # field 13

    def linked(span_id: int) -> bytes:
        return prefix + span_id.to_bytes(8, "big") + tail

    return linked


def error_status(message: str) -> bytes:
    """A span's `Status` (field 15): error, with `message`."""
    return delimited(15, delimited(2, message.encode()) + _tag(3, 0) + _varint(STATUS_ERROR))


class SpanWriter:
    """Encodes the spans of one trace under one parent: trace id, parent and the
    attributes every span carries are encoded once."""

    __slots__ = ("_common", "_head", "_tail")

    def __init__(
        self, trace_id: int, parent: int | None, common: Mapping[str, AttributeValue]
    ) -> None:
        self._head = delimited(1, trace_id.to_bytes(16, "big"))
        self._tail = _parent(parent)
        self._common = attributes(9, common)

    def under(self, parent: int | None) -> SpanWriter:
        """The same writer for spans under another parent."""
        other = SpanWriter.__new__(SpanWriter)
        other._head, other._common = self._head, self._common
        other._tail = _parent(parent)
        return other

    @property
    def trace_id(self) -> bytes:
        return self._head[2:]

    def span(
        self,
        span_id: int,
        name: bytes,
        start_ns: int,
        end_ns: int,
        attributes: bytes,
        extra: bytes = b"",
    ) -> bytes:
        """A whole `Span`, as field 2 of `ScopeSpans`. `name` is the encoded name field
        (`delimited(5, ...)`), `attributes` encoded `attribute(9, ...)` fields, `extra`
        events, links and status, encoded."""
        body = b"".join(
            (
                self._head,
                b"\x12\x08",  # field 2, 8 bytes: the span id
                span_id.to_bytes(8, "big"),
                self._tail,
                name,
                _TIMES.pack(0x39, start_ns, 0x41, end_ns),  # fields 7 and 8, fixed64
                self._common,
                attributes,
                extra,
                _SAMPLED_FLAGS,
            )
        )
        n = len(body)
        if 0x80 <= n < 0x4000:  # a span's usual size: its length in two bytes
            return b"".join((b"\x12", bytes((n & 0x7F | 0x80, n >> 7)), body))
        return b"\x12" + _varint(n) + body


def _parent(span_id: int | None) -> bytes:
    """The parent span id field (none for a root) and the span kind, internal."""
    field = b"" if span_id is None else delimited(4, span_id.to_bytes(8, "big"))
    return field + _tag(6, 0) + _varint(KIND_INTERNAL)


class Envelope:
    """The request around a batch of encoded spans: one resource, one scope."""

    __slots__ = ("_resource", "_scope")

    def __init__(self, resource: Mapping[str, AttributeValue], scope: str) -> None:
        self._resource = delimited(1, attributes(1, resource))
        self._scope = delimited(1, delimited(1, scope.encode()))

    def request(self, spans: Iterable[bytes]) -> bytes:
        """An `ExportTraceServiceRequest` holding `spans` (each from `SpanWriter.span`)."""
        scope_spans = delimited(2, self._scope + b"".join(spans))
        return delimited(1, self._resource + scope_spans)


def concatenated(requests: Sequence[bytes]) -> bytes:
    """Several serialized requests as one: protobuf merges repeated fields of
    concatenated messages, so their `resource_spans` simply add up."""
    return b"".join(requests)
