"""The JSON drawing: nodes and dependency edges (the compensation order follows from them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..model import CompiledSaga
from .facts import Counts, state_of


def render(
    saga: CompiledSaga, states: Mapping[str, str] | None = None, counts: Counts | None = None
) -> str:
    nodes: list[dict[str, Any]] = []
    for name in sorted(saga.actions):
        spec = saga.actions[name]
        node: dict[str, Any] = {
            "id": name,
            "uses": spec.uses,
            "pivot": spec.pivot,
            "compensable": spec.compensable,
        }
        if spec.for_each is not None:
            node["for_each"] = spec.for_each
            if counts is not None and name in counts:
                done, total = counts[name]
                node["elements"] = {"done": done, "total": total}
        if spec.condition is not None:
            node["if"] = spec.condition
        state = state_of(states, name)
        if state is not None:
            node["state"] = state
        nodes.append(node)
    document = {
        "saga": saga.name,
        "version": saga.version,
        "nodes": nodes,
        "edges": [{"source": source, "target": target} for source, target in saga.edges()],
    }
    return json.dumps(document, indent=2) + "\n"
