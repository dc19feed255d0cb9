"""The terminal drawing: the DAG layer by layer, markers, dependencies, compensation order."""

from __future__ import annotations

from collections.abc import Mapping

from ..model import CompiledSaga
from .facts import (
    Counts,
    compensation_stages,
    condition_label,
    marks,
    rolls_forward,
    state_of,
    title,
)


def render(
    saga: CompiledSaga, states: Mapping[str, str] | None = None, counts: Counts | None = None
) -> str:
    layers = saga.layers()
    lines = [f"saga {saga.name} v{saga.version}: {len(saga)} actions in {len(layers)} layers"]
    lines += [f"  {line}" for line in saga.description.splitlines()]
    rows = {name: _row(saga, name, states, counts) for name in saga.actions}
    columns = len(next(iter(rows.values())))
    widths = [max(len(row[i]) for row in rows.values()) for i in range(columns - 1)]
    for number, layer in enumerate(layers, 1):
        lines.append("")
        lines.append(f"layer {number}" + ("" if number > 1 else "  (starts at once)"))
        for name in layer:
            row = rows[name]
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append(("  " + "  ".join([*cells, row[-1]])).rstrip())
    lines.append("")
    lines += _compensation(saga)
    return "\n".join(lines) + "\n"


def _row(
    saga: CompiledSaga, name: str, states: Mapping[str, str] | None, counts: Counts | None
) -> tuple[str, ...]:
    spec = saga.actions[name]
    state = state_of(states, name)
    dependencies = sorted(saga.dependencies(name))
    condition = condition_label(spec)
    return (
        title(name, spec, counts),
        *(() if state is None else (state,)),
        spec.uses,
        " ".join(f"[{mark}]" for mark in (*marks(spec), *([condition] if condition else []))),
        f"← {', '.join(dependencies)}" if dependencies else "",
    )


def _compensation(saga: CompiledSaga) -> list[str]:
    stages = compensation_stages(saga)
    if not stages:
        lines = ["compensation on failure: nothing to undo"]
    else:
        lines = ["compensation order on failure (completed actions undone, one line at a time):"]
        lines += [f"  {i}. {', '.join(stage)}" for i, stage in enumerate(stages, 1)]
    forward = rolls_forward(saga)
    if forward:
        lines.append(
            f"after a pivot succeeded, never compensated (rolls forward): {', '.join(forward)}"
        )
    return lines
