"""`GET /metrics`: the metrics every sagactl process exposes, defined once in
`sagactl.engine.metrics` (`sagactl worker --metrics-port` serves the same)."""

from __future__ import annotations

from sagactl.engine.metrics import Metrics

__all__ = ["Metrics"]
