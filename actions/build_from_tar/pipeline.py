"""One pipeline for every byte of an upload: count and cap, hash, inflate when gzip, parse.

Compression is decided from the first block: a valid tar header (checksum and magic) means
a plain tar whatever its first name starts with; else gzip's magic means gzip, and the
magic of another format is refused by name. gzip output is capped as it is inflated, so a
bomb stops at the cap. Staging and extraction both run this pipeline.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from typing import Any

from sagactl.engine import InputError

from .tarcheck import BLOCK, Member, StagingLimits, TarParser
from .tarheader import compression_of

CHUNK = 1 << 20
"""Bytes read, written, hashed and inflated at a time: memory stays flat whatever the size."""
_GZIP = b"\x1f\x8b"


class _Inflater:
    """Passes a plain tar through, or inflates gzip (several members allowed), capping output."""

    def __init__(self, limits: StagingLimits, sink: Callable[[memoryview], None]) -> None:
        self._limits = limits
        self._sink = sink
        self._head = bytearray()
        self.compression: str | None = None
        self._zlib: Any = None
        self._between = bytearray()
        self.total = 0

    def feed(self, data: memoryview) -> None:
        if self.compression is None:
            self._head += data
            if len(self._head) < BLOCK:
                return
            data = memoryview(bytes(self._head))
            self._decide()
        if self.compression == "none":
            self._emit(data)
        else:
            self._inflate(data)

    def _decide(self) -> None:
        """A valid tar header first, then the magic bytes of compressed formats."""
        found = compression_of(bytes(self._head))
        if found not in (None, "gzip"):
            raise InputError(
                f"the upload is {found} data: only tar and gzip-compressed tar are accepted"
            )
        self.compression = found or "none"
        self._head.clear()

    def _emit(self, data: memoryview | bytes) -> None:
        self.total += len(data)
        if self.total > self._limits.max_total_bytes:
            raise InputError(
                f"the archive unpacks to more than the limit of {self._limits.max_total_bytes} "
                "uncompressed bytes"
            )
        self._sink(memoryview(data))

    def _inflate(self, data: memoryview) -> None:
        pending: bytes | memoryview = data
        while pending:
            if self._zlib is None:
                self._between += pending
                pending = b""
                if len(self._between) < 2:
                    return
                if not self._between.startswith(_GZIP):
                    if any(self._between):
                        raise InputError("trailing data after the gzip stream")
                    self._between.clear()  # zero padding after the last member
                    return
                self._zlib = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                pending = bytes(self._between)
                self._between.clear()
            try:
                out = self._zlib.decompress(pending, CHUNK)
                self._emit(out)
                while self._zlib.unconsumed_tail:
                    out = self._zlib.decompress(self._zlib.unconsumed_tail, CHUNK)
                    self._emit(out)
            except zlib.error as exc:
                raise InputError(f"corrupt gzip data ({exc})") from None
            if self._zlib.eof:
                pending = self._zlib.unused_data
                self._zlib = None
            else:
                pending = b""

    def close(self) -> None:
        if self.compression is None:
            if not self._head:
                raise InputError("the upload is empty")
            data = memoryview(bytes(self._head))
            self._decide()
            self.feed(data)
        if self.compression == "gzip" and (self._zlib is not None or self._between):
            if self._zlib is not None:
                try:
                    self._emit(self._zlib.flush())
                except zlib.error as exc:
                    raise InputError(f"corrupt gzip data ({exc})") from None
            raise InputError("truncated: the gzip stream ends before its end")


class Pipeline:
    """Counts, caps and hashes raw bytes, then inflates and parses them (gzip or plain)."""

    def __init__(
        self,
        limits: StagingLimits,
        on_member: Callable[[Member], None] | None = None,
        on_data: Callable[[memoryview], None] | None = None,
    ) -> None:
        self.limits = limits
        self.size = 0
        self.hash = hashlib.sha256()
        self.parser = TarParser(limits, on_member, on_data)
        self.inflater = _Inflater(limits, self.parser.feed)

    def feed(self, data: memoryview) -> None:
        self.size += len(data)
        if self.size > self.limits.max_upload_bytes:
            raise InputError(
                f"the upload is larger than the limit of {self.limits.max_upload_bytes} bytes"
            )
        self.hash.update(data)
        self.inflater.feed(data)

    def close(self) -> None:
        self.inflater.close()
        self.parser.close()
