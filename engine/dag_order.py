"""The deterministic topological order of a saga's actions, with the stdlib only.

What `networkx.lexicographical_topological_sort` gives (Kahn's algorithm, ties broken by
name), without importing networkx: `sagactl status` and `validate` need the order and the
cycle check, not the graph library.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping


def lexicographic_order(depends_on: Mapping[str, Iterable[str]]) -> tuple[str, ...] | None:
    """Every action (and every name it depends on) with each after what it depends on,
    the smallest name first among those ready; None when the dependencies hold a cycle."""
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    for name, deps in depends_on.items():
        waiting.setdefault(name, 0)
        for dep in set(deps):
            waiting.setdefault(dep, 0)
            waiting[name] += 1
            dependents.setdefault(dep, []).append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for after in dependents.get(name, ()):
            waiting[after] -= 1
            if waiting[after] == 0:
                heapq.heappush(ready, after)
    return tuple(order) if len(order) == len(waiting) else None
