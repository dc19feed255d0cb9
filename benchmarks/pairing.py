"""Interleaved baselines: a baseline round timed just before every measured round.

The disk here is shared and its fsync latency swings by an order of magnitude within
minutes, so a baseline measured in a separate test can land in a different weather than
what it is compared with. Timing the baseline in pytest-benchmark's (untimed) `setup`
before each round gives both figures the same conditions.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def paired(
    benchmark: Any,
    target: Callable[..., T],
    baseline: Callable[[], object],
    *,
    key: str,
    units: float,
    baseline_key: str,
    baseline_units: float,
    rounds: int,
    prepare: Callable[[], tuple[Any, ...]] = tuple,
    settle: Callable[[], object] = tuple,
) -> T:
    """Benchmarks `target(*prepare())` for `rounds` rounds, each preceded by a timed
    `baseline()`; records both (the baseline's median under `baseline_key`) in extra_info.
    `prepare` runs untimed after the baseline, for what a round needs set up; `settle`
    untimed before it, to wait out what the previous round left running."""
    times: list[float] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        settle()
        start = time.perf_counter()
        baseline()
        times.append(time.perf_counter() - start)
        return prepare(), {}

    result = benchmark.pedantic(target, setup=setup, rounds=rounds)
    benchmark.extra_info.update(
        key=key,
        units=units,
        baseline_key=baseline_key,
        baseline_seconds=statistics.median(times),
        baseline_units=baseline_units,
        baseline_rounds=len(times),
    )
    return result
