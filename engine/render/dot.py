"""The Graphviz DOT drawing: dependencies solid, the compensation order dashed."""

from __future__ import annotations

from collections.abc import Mapping

from ..model import CompiledSaga
from .facts import (
    COMPENSATION_COLOUR,
    IRREVERSIBLE_COLOUR,
    PIVOT_COLOUR,
    Counts,
    child_states,
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
        child = saga.actions[name].child
        if child is not None:
            lines += _cluster(child, child_states(states, name), f"{name}/", "  ")
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


def _cluster(
    saga: CompiledSaga, states: Mapping[str, str] | None, prefix: str, indent: str
) -> list[str]:
    """A child saga as a dashed cluster beside the action that runs it (node ids are
    `ACTION/CHILD_ACTION`), linked to it by a dotted line."""
    owner = prefix[:-1]
    lines = [
        f"{indent}subgraph {_quote('cluster_' + owner)} {{",
        f"{indent}  label={_quote(f'{owner}: saga {saga.name} v{saga.version}')}; style=dashed;",
    ]
    for name in sorted(saga.actions):
        attributes = _node_attributes(saga, name, states, None)
        lines.append(f"{indent}  {_quote(prefix + name)} [{attributes}];")
        child = saga.actions[name].child
        if child is not None:
            lines += _cluster(child, child_states(states, name), f"{prefix}{name}/", indent + "  ")
    for source, target in saga.edges():
        lines.append(f"{indent}  {_quote(prefix + source)} -> {_quote(prefix + target)};")
    lines.append(f"{indent}}}")
    for root in saga.roots():
        lines.append(f"{indent}{_quote(owner)} -> {_quote(prefix + root)} [style=dotted];")
    return lines


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
