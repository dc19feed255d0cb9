"""Issue 10 item 12: drawing a 10,000-action saga costs about what validating it costs.

`validate` of the definition file (parse, check, compile: what `sagactl graph` does before
drawing) is timed before every round as the baseline; the round draws what it compiled.
Two shapes: a chain, and a lattice of layers four wide where every action waits for the
whole layer before it (so the compensation edges must be reduced).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine import ActionInfo, CompiledSaga
from sagactl.engine.compiler import load_saga_file
from sagactl.engine.render import render

from .pairing import paired

SIZE = 10_000
WIDTH = 4
NOOP = ActionInfo(
    "bench.noop",
    {"type": "object", "properties": {}, "additionalProperties": False},
    {"type": "object", "properties": {}},
    compensable=True,
)


class _Catalog:
    """The one action these definitions use."""

    def info(self, name: str) -> ActionInfo | None:
        return NOOP if name == NOOP.name else None

    def names(self) -> Sequence[str]:
        return [NOOP.name]


def _definition(name: str, needs: dict[str, list[str]]) -> str:
    lines = ["apiVersion: sagactl/v1", "kind: Saga", f"metadata: {{name: {name}, version: 1}}"]
    lines.append("actions:")
    for action, deps in needs.items():
        lines += [f"  {action}:", "    uses: bench.noop"]
        if deps:
            lines.append(f"    needs: [{', '.join(deps)}]")
    return "\n".join(lines) + "\n"


def _chain() -> dict[str, list[str]]:
    names = [f"a{i:05d}" for i in range(SIZE)]
    return {name: [names[i - 1]] if i else [] for i, name in enumerate(names)}


def _lattice() -> dict[str, list[str]]:
    layers = [[f"l{row:04d}c{col}" for col in range(WIDTH)] for row in range(SIZE // WIDTH)]
    return {
        name: layers[row - 1] if row else [] for row, layer in enumerate(layers) for name in layer
    }


SHAPES = {"chain": _chain, "lattice": _lattice}


@pytest.mark.parametrize("fmt", ["text", "dot"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_graph_of_10000_actions(benchmark: Any, tmp_path: Path, shape: str, fmt: str) -> None:
    """`graph --format FMT` of a 10,000-action saga, with `validate` of it between rounds."""
    path = tmp_path / f"{shape}.yaml"
    path.write_text(_definition(shape, SHAPES[shape]()))
    catalog = _Catalog()
    validated: list[CompiledSaga] = []

    def validate() -> None:
        validated[:] = [load_saga_file(path, catalog)]

    drawing = paired(
        benchmark,
        lambda saga: render(saga, fmt),
        validate,
        prepare=lambda: (validated[0],),
        key=f"graph_{shape}_{fmt}",
        units=SIZE,
        baseline_key=f"validate_{shape}_{fmt}",
        baseline_units=SIZE,
        rounds=5,
    )
    assert isinstance(drawing, str) and drawing.count("bench.noop") == SIZE
