"""The image builder's steps as spans under build_image's attempt (`ctx.tracer`).

A builder reports its work as output lines. A line that opens a step (`STEP 2/5: RUN ...`
from buildah, `#3 [2/4] RUN ...` from BuildKit, `oci: ...` or `base python: ...` from the
embedded builder) ends the step before it and opens a span for the new one; other lines
are events of the step they belong to. Lines may come from a reader thread: spans are
opened with `start_span`, never made current.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sagactl.engine.tracing import Tracer

_STEP = re.compile(r"^(STEP \d+/\d+|#\d+ \[|oci: |base [a-z0-9-]+: )")
_NAME_MAX = 80


class StepSpans:
    """Feed it every output line; `close()` ends the last step (outcome given)."""

    def __init__(self, tracer: Tracer, builder: str) -> None:
        self._tracer = tracer
        self._builder = builder
        self._span: Any = None
        self._lock = threading.Lock()
        self.steps = 0

    def line(self, text: str) -> None:
        with self._lock:
            if _STEP.match(text):
                self._end(None)
                self.steps += 1
                name = text if len(text) <= _NAME_MAX else text[: _NAME_MAX - 3] + "..."
                self._span = self._tracer.start_span(
                    f"build step {name}",
                    attributes={"sagactl.builder": self._builder, "sagactl.step": self.steps},
                )
            elif self._span is not None:
                self._span.add_event("output", {"line": text})

    def close(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._end(error)

    def _end(self, error: BaseException | None) -> None:
        if self._span is None:
            return
        if error is not None:
            self._span.record_exception(error)
        self._span.end()
        self._span = None
