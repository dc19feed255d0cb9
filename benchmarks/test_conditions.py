"""Conditions: what an `if:` on every action costs, against the same saga without them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine import CompiledSaga

from .pairing import paired
from .workloads import WIDE_SIZE, chain

ROUNDS = 5


@pytest.fixture
def engine(runner: asyncio.Runner, tmp_path: Path) -> Iterator[Any]:
    from .engine_runner import EngineService

    service = EngineService(runner, tmp_path / "sagactl.sqlite")
    yield service
    service.close()


def conditional(saga: CompiledSaga) -> CompiledSaga:
    """`saga` with an `if:` on every action that reads its dependency's output (true)."""
    actions = {}
    for name, spec in saga.actions.items():
        checks = [f"actions.{dep}.outputs.done == true" for dep in sorted(spec.depends_on)]
        condition = "${{ " + (" && ".join(checks) or "saga.name != ''") + " }}"
        actions[name] = dataclasses.replace(spec, condition=condition)
    return CompiledSaga(name=f"{saga.name}-if", version=1, actions=actions)


def test_conditional_chain_vs_chain(benchmark: Any, engine: Any) -> None:
    """A 300-chain whose every action has a condition (each one true), against the plain
    300-chain timed just before each round: the ratio is the per-action cost of an `if`."""
    plain = chain().compiled()
    gated = conditional(plain)
    result = paired(
        benchmark,
        lambda: engine.call(lambda e: e.run(gated)),
        lambda: engine.call(lambda e: e.run(plain)),
        key="sagactl_conditional_chain",
        units=WIDE_SIZE,
        baseline_key="sagactl_chain",
        baseline_units=WIDE_SIZE,
        rounds=ROUNDS,
    )
    assert result.ok and all(s.state == "succeeded" for s in result.actions.values())
    assert len(result.actions) == WIDE_SIZE
