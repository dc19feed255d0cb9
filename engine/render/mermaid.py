"""The Mermaid flowchart: dependencies solid, the compensation order dashed."""

from __future__ import annotations

import re
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
    title,
)

_PLAIN_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def node_id(name: str) -> str:
    """The action's name when Mermaid takes it as an id, else an `x_` + hex spelling of it
    (names that could read as that spelling are spelled too, so ids never collide)."""
    if _PLAIN_ID.fullmatch(name) and name.lower() != "end" and not name.startswith("x_"):
        return name
    return "x_" + name.encode().hex()


def render(
    saga: CompiledSaga, states: Mapping[str, str] | None = None, counts: Counts | None = None
) -> str:
    lines = [
        f"%% {saga.name} v{saga.version}: solid arrows are dependencies (the source runs first),",
        "%% dashed arrows the compensation order (the source is undone first)",
        "flowchart TD",
    ]
    for name in sorted(saga.actions):
        lines.append(f"  {_node(saga, name, states, counts)}")
    links = 0
    for source, target in saga.edges():
        lines.append(f"  {node_id(source)} --> {node_id(target)}")
        links += 1
    compensations = compensation_edges(saga)
    for first, then in compensations:
        lines.append(f"  {node_id(first)} -.-> {node_id(then)}")
    if compensations:
        dashed = ",".join(str(links + i) for i in range(len(compensations)))
        lines.append(f"  linkStyle {dashed} stroke:{COMPENSATION_COLOUR}")
    lines += _classes(saga, states)
    return "\n".join(lines) + "\n"


def _node(
    saga: CompiledSaga, name: str, states: Mapping[str, str] | None, counts: Counts | None
) -> str:
    spec = saga.actions[name]
    state = state_of(states, name)
    condition = condition_label(spec)
    parts = [
        title(name, spec, counts),
        spec.uses,
        *marks(spec),
        *([condition] if condition else []),
        *([f"[{state}]"] if state is not None else []),
    ]
    label = "<br/>".join(_escape(part) for part in parts)
    if spec.pivot:
        opening, closing = "{{", "}}"
    elif not spec.compensable:
        opening, closing = "[[", "]]"  # a box with double sides
    else:
        opening, closing = "(", ")"
    return f'{node_id(name)}{opening}"{label}"{closing}'


def _classes(saga: CompiledSaga, states: Mapping[str, str] | None) -> list[str]:
    """Pivot and irreversible styles; with states, state fills, defined last so they win."""
    by_class: dict[str, list[str]] = {}
    for name in sorted(saga.actions):
        for mark in marks(saga.actions[name]):
            by_class.setdefault(mark, []).append(node_id(name))
        state = state_of(states, name)
        if state is not None:
            by_class.setdefault(f"state_{state}", []).append(node_id(name))
    definitions = {
        "pivot": f"fill:{PIVOT_COLOUR},stroke:#8a6d00,stroke-width:3px",
        "irreversible": f"fill:{IRREVERSIBLE_COLOUR},stroke-dasharray:4 3",
    }
    drawn = {state_of(states, name) for name in saga.actions} - {None}
    for state in sorted(s for s in drawn if s is not None):
        definitions[f"state_{state}"] = f"fill:{fill(state)}"
    lines = []
    for cls, style in definitions.items():
        if cls in by_class:
            lines.append(f"  classDef {_class_name(cls)} {style}")
    for cls in definitions:
        if cls in by_class:
            lines.append(f"  class {','.join(by_class[cls])} {_class_name(cls)}")
    return lines


def _class_name(cls: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", cls)


def _escape(text: str) -> str:
    """Mermaid labels are quoted; quotes and angle brackets become entities."""
    return (
        text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )
