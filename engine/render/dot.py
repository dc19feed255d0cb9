"""The Graphviz DOT drawing: dependencies solid, the compensation order dashed."""

from __future__ import annotations

from collections.abc import Mapping

from ..model import CompiledSaga
from .facts import (
    COMPENSATION_COLOUR,
    IRREVERSIBLE_COLOUR,
    PIVOT_COLOUR,
    Counts,
    compensation_edges,
    condition_label,
    fill,
    marks,
    state_of,
)
from .facts import (
    title as node_title,
)

FONT = "Helvetica"


def render(
    saga: CompiledSaga, states: Mapping[str, str] | None = None, counts: Counts | None = None
) -> str:
    title = f"{saga.name} v{saga.version}"
    lines = [
        f"digraph {_quote(saga.name)} {{",
        f"  graph [label={_quote(title)}, labelloc=t, rankdir=TB, fontname={_quote(FONT)}];",
        f'  node [shape=box, style="rounded,filled", fillcolor="#ffffff", '
        f"fontname={_quote(FONT)}];",
        '  edge [color="#444444"];',
        "",
        "  // actions: hexagon = pivot, square corners with notches = irreversible",
    ]
    for name in sorted(saga.actions):
        lines.append(f"  {_quote(name)} [{_node_attributes(saga, name, states, counts)}];")
    if saga.edges():
        lines.append("")
        lines.append("  // dependencies: the source runs first")
    for source, target in saga.edges():
        lines.append(f"  {_quote(source)} -> {_quote(target)};")
    compensations = compensation_edges(saga)
    if compensations:
        lines.append("")
        lines.append("  // compensation order (dashed): the source is undone first")
        for first, then in compensations:
            lines.append(
                f"  {_quote(first)} -> {_quote(then)} "
                f'[style=dashed, color="{COMPENSATION_COLOUR}", constraint=false];'
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_attributes(
    saga: CompiledSaga, name: str, states: Mapping[str, str] | None, counts: Counts | None
) -> str:
    spec = saga.actions[name]
    state = state_of(states, name)
    condition = condition_label(spec)
    label = [
        node_title(name, spec, counts),
        spec.uses,
        *marks(spec),
        *([condition] if condition else []),
        *([f"[{state}]"] if state is not None else []),
    ]
    attributes = {"label": "\\n".join(_escape(part) for part in label)}
    style = ["filled"]
    if spec.compensable:
        style.insert(0, "rounded")
    else:
        style.append("diagonals")
        attributes["fillcolor"] = IRREVERSIBLE_COLOUR
    if spec.pivot:
        attributes["shape"] = "hexagon"
        attributes["penwidth"] = "2"
        attributes["fillcolor"] = PIVOT_COLOUR
    if state is not None:
        attributes["fillcolor"] = fill(state)
    attributes["style"] = ",".join(style)
    return ", ".join(f'{key}="{value}"' for key, value in attributes.items())


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    return f'"{_escape(text)}"'
