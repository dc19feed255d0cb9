"""What every drawing shows besides the edges: markers, the compensation order, state colours."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..model import ActionSpec, CompiledSaga
from ..ordering import depth_after, nearest_after
from ..states import ActionState

A = ActionState
STATES: Mapping[str, str] = MappingProxyType(
    {
        A.PENDING: "#f2f2f2",
        A.RUNNING: "#cfe2ff",
        A.SUCCEEDED: "#d1e7dd",
        A.FAILED: "#f8d7da",
        A.COMPENSATING: "#ffe5b4",
        A.COMPENSATED: "#e2d9f3",
        A.SKIPPED: "#dee2e6",
    }
)
"""Every action state and the fill colour it is drawn with."""

UNKNOWN_STATE_COLOUR = "#ffffff"
PIVOT_COLOUR = "#fff3cd"
IRREVERSIBLE_COLOUR = "#e9ecef"
COMPENSATION_COLOUR = "#b22222"


TIMES = "\N{MULTIPLICATION SIGN}"
Counts = Mapping[str, tuple[int, int | None]]
"""`for_each` action -> (elements done, elements in all; None until known), in a run."""


def title(name: str, spec: ActionSpec, counts: Counts | None = None) -> str:
    """The action's name, and for a fan-out its count: `deploy` times N (the count is
    known only at run time), or in a run times 3/5 (elements done of all)."""
    if spec.for_each is None:
        return name
    done, total = (counts or {}).get(name, (0, None))
    if counts is None or total is None:
        return f"{name} {TIMES}N"
    return f"{name} {TIMES}{done}/{total}"


def marks(spec: ActionSpec) -> tuple[str, ...]:
    """`pivot` and/or `irreversible` (an action without compensation)."""
    return (("pivot",) if spec.pivot else ()) + (() if spec.compensable else ("irreversible",))


def condition_label(spec: ActionSpec) -> str | None:
    """`if EXPR` for a conditional action (the expression without its `${{ }}`)."""
    if spec.condition is None:
        return None
    text = spec.condition.strip()
    inner = text[3:-2] if text.startswith("${{") and text.endswith("}}") else text
    return "if " + " ".join(inner.split())


def state_of(states: Mapping[str, str] | None, action: str) -> str | None:
    """The action's state when states are drawn; an action without one is pending."""
    if states is None:
        return None
    return states.get(action, A.PENDING)


def fill(state: str) -> str:
    return STATES.get(state, UNKNOWN_STATE_COLOUR)


def rolls_forward(saga: CompiledSaga) -> tuple[str, ...]:
    """The pivots and every action after one: once a pivot succeeded, nothing is undone."""
    after: set[str] = set()
    for action in saga:  # topological order: every dependency is decided first
        if saga.actions[action].pivot or not after.isdisjoint(saga.dependencies(action)):
            after.add(action)
    return tuple(sorted(after))


def undoable(saga: CompiledSaga) -> tuple[str, ...]:
    """The actions a failure can compensate: compensable ones that come before any pivot."""
    forward = set(rolls_forward(saga))
    return tuple(
        a for a in sorted(saga.actions) if saga.actions[a].compensable and a not in forward
    )


def compensation_stages(saga: CompiledSaga) -> tuple[tuple[str, ...], ...]:
    """Undoable actions in the order they are compensated; each stage's run together.

    An action's stage is the longest chain of undoable actions that ran after it (those
    are undone first).
    """
    stages: dict[int, list[str]] = {}
    for action, depth in depth_after(saga, undoable(saga)).items():
        stages.setdefault(depth, []).append(action)
    return tuple(tuple(sorted(stages[depth])) for depth in sorted(stages))


def compensation_edges(saga: CompiledSaga) -> tuple[tuple[str, str], ...]:
    """(b, a) pairs, sorted: b is compensated before a, because a ran before b (only the
    nearest such pairs)."""
    nearest = nearest_after(saga, undoable(saga))
    return tuple(sorted((later, earlier) for earlier in nearest for later in nearest[earlier]))
