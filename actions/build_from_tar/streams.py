"""StreamRegistry: upload stream ids -> live readers and staged paths, cleaned up at saga end."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CleanupHook = Callable[[str, str], None]
"""Called with (stream_id, outcome) when the saga using the stream ends."""

OUTCOMES = ("succeeded", "compensated", "abandoned", "failed", "cancelled")


class StreamGone(LookupError):
    """The stream's reader is not here (another process, a crash) or was already consumed."""


@dataclass
class _Entry:
    reader: Any | None
    staged: Path | None = None
    claimed: bool = False
    failure: str | None = None
    """Why the attempt that claimed the reader failed, for the attempts after it."""
    hooks: list[CleanupHook] = field(default_factory=list)


class StreamRegistry:
    """Application-level map of upload streams; safe from many threads and tasks at once.

    A reader is handed out once (`claim`): a second attempt cannot re-read a stream that
    the first one partly consumed, and must recover from the staged file instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    @staticmethod
    def new_id() -> str:
        """A fresh random stream id (32 url-safe characters, 192 bits)."""
        return secrets.token_urlsafe(24)

    def register(self, reader: Any, *, stream_id: str | None = None) -> str:
        """Registers a live reader (a binary file or an async byte source); returns its id."""
        stream_id = stream_id or self.new_id()
        with self._lock:
            if stream_id in self._entries:
                raise ValueError(f"stream {stream_id} is already registered")
            self._entries[stream_id] = _Entry(reader)
        return stream_id

    def claim(self, stream_id: str) -> Any:
        """The live reader, handed out once; raises StreamGone when there is none left."""
        with self._lock:
            entry = self._entries.get(stream_id)
            if entry is None or entry.reader is None:
                raise StreamGone(f"stream {stream_id} has no live reader in this process")
            if entry.claimed:
                why = f", which failed: {entry.failure}" if entry.failure else ""
                raise StreamGone(f"stream {stream_id} was already read by an earlier attempt{why}")
            entry.claimed = True
            return entry.reader

    def failed(self, stream_id: str, cause: str) -> None:
        """Records why the attempt holding the reader failed (a later claim reports it)."""
        with self._lock:
            entry = self._entries.get(stream_id)
            if entry is not None:
                entry.failure = cause

    def set_staged(self, stream_id: str, path: Path) -> None:
        """Records where the stream was staged (ignored for a stream not registered here:
        a run resumed by a process that never saw it)."""
        with self._lock:
            entry = self._entries.get(stream_id)
            if entry is not None:
                entry.staged = path

    def staged(self, stream_id: str) -> Path | None:
        with self._lock:
            entry = self._entries.get(stream_id)
            return entry.staged if entry else None

    def on_cleanup(self, stream_id: str, hook: CleanupHook) -> None:
        """Runs `hook` when `release` is called for this stream (at saga end)."""
        with self._lock:
            self._entries.setdefault(stream_id, _Entry(None)).hooks.append(hook)

    def release(self, stream_id: str, outcome: str) -> None:
        """The saga ended: forget the stream and run its hooks (each once, errors collected)."""
        with self._lock:
            entry = self._entries.pop(stream_id, None)
        if entry is None:
            return
        errors: list[Exception] = []
        for hook in entry.hooks:
            try:
                hook(stream_id, outcome)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup(f"cleanup of stream {stream_id} failed", errors)

    def __contains__(self, stream_id: object) -> bool:
        with self._lock:
            return stream_id in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
