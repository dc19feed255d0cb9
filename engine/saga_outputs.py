"""A saga's `outputs:`, resolved from its run when it succeeds.

They are what `status --json` shows as `outputs` and what a parent sees of a child saga.
An output whose reference names nothing at run time (an optional output the action left
out) is null, rather than failing a run whose every action succeeded.
"""

from __future__ import annotations

from .action import JSON
from .errors import InputError
from .model import CompiledSaga
from .references import Scope, resolve


def resolve_outputs(saga: CompiledSaga, scope: Scope) -> dict[str, JSON]:
    """Each of the saga's outputs with its references looked up in `scope`."""
    resolved: dict[str, JSON] = {}
    for name, value in saga.outputs.items():
        try:
            resolved[name] = resolve(value, scope)
        except InputError:
            resolved[name] = None
    return resolved
