"""Issue 12: a fan-out's cost per element against an action's in a 300-wide saga.

Both run the same no-op on the same durable SQLite log, through the same engine: the
10,000-element `for_each` is timed, and a 300-independent-actions saga (the workload of
`test_engine.py`, on a log of its own) is timed just before each round, so both figures
share the disk's weather. Target: an element costs at most 1.5x an independent action.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .pairing import paired
from .workloads import FAN_OUT_SIZE, WIDE_SIZE, fan_out, independent


@pytest.fixture
def engines(runner: asyncio.Runner, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """Two open engines with the no-op action, each on a fresh SQLite log of its own (the
    wide saga must not pay for checkpointing the fan-out's log, nor the reverse)."""
    from .engine_runner import EngineService

    fan, wide = (EngineService(runner, tmp_path / f"{n}.sqlite") for n in ("fan", "wide"))
    yield fan, wide
    fan.close()
    wide.close()


def test_fan_out_per_element(benchmark: Any, engines: tuple[Any, Any]) -> None:
    engine, baseline = engines
    saga, wide = fan_out(), independent()
    items = list(range(FAN_OUT_SIZE))

    def run_fan_out() -> Any:
        return engine.call(lambda e: e.run(saga, {"items": items}))

    result = paired(
        benchmark,
        run_fan_out,
        lambda: baseline.run(wide),
        key="sagactl_fan_out",
        units=FAN_OUT_SIZE,
        baseline_key="sagactl_independent_paired",
        baseline_units=WIDE_SIZE,
        rounds=3,
    )
    assert result.ok
    assert len(result.actions["each"].outputs["results"]) == FAN_OUT_SIZE
