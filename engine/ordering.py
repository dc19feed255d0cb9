"""Linear passes over a saga's DAG: which actions come nearest after which, and how deep.

Compensation undoes actions in reverse dependency order, restricted to some of them (the
undoable ones, or those a failed run completed). Computing that order from each action's
full set of ancestors or descendants is quadratic in a long chain; these passes walk the
reversed topological order once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from .model import CompiledSaga


def nearest_after(saga: CompiledSaga, among: Collection[str]) -> Mapping[str, tuple[str, ...]]:
    """For each action in `among`, the actions of `among` that run after it with no other
    action of `among` in between (the transitive reduction, seen through the others).

    Bit sets per action: `reach` holds the members after it, `beyond` those after another
    member; the nearest are `reach` without `beyond`. A set is dropped as soon as every
    action before it has been visited, so a chain holds only a few at a time.
    """
    wanted = set(among)
    members = [a for a in saga.topological_order() if a in wanted]
    bit = {name: 1 << i for i, name in enumerate(members)}
    reach: dict[str, int] = {}
    beyond: dict[str, int] = {}
    waiting = {a: len(saga.dependencies(a)) for a in saga.actions}
    nearest: dict[str, tuple[str, ...]] = {}
    for action in reversed(saga.topological_order()):
        r = b = 0
        for after in saga.dependents(action):
            member = after in bit
            r |= reach[after] | (bit[after] if member else 0)
            b |= reach[after] if member else beyond[after]
            waiting[after] -= 1
            if not waiting[after]:
                del reach[after], beyond[after]
        reach[action], beyond[action] = r, b
        if action in bit:
            nearest[action] = tuple(members[i] for i in _bits(r & ~b))
    return nearest


def depth_after(saga: CompiledSaga, among: Collection[str]) -> Mapping[str, int]:
    """For each action in `among`, the longest chain of `among` actions that run after it:
    0 for those undone first."""
    members = set(among)
    depth: dict[str, int] = {}
    for action in reversed(saga.topological_order()):
        depth[action] = max(
            (depth[after] + (after in members) for after in saga.dependents(action)),
            default=0,
        )
    return {action: depth[action] for action in members}


def _bits(mask: int) -> list[int]:
    """The positions of the set bits, lowest first."""
    positions = []
    while mask:
        low = mask & -mask
        positions.append(low.bit_length() - 1)
        mask ^= low
    return positions
