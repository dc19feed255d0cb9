"""Conditions at run time: which ready actions run, and which the run skips, and why.

An action is skipped when its `if:` is false, or when it uses outputs (in `with:` or in
its `if:`) of an action that was skipped; an action that only `needs` a skipped one runs.
The frontier asks before it records an action's intent, so the decision is logged
(`action_skipped` with its reason) in the same commit as the completion that made the
action ready, and never taken again. It depends only on the run's inputs and logged
outputs, so it is the same whichever process takes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import expressions, references
from ..errors import InputError
from ..model import CompiledSaga
from ..states import ActionState, RunStatus


class Conditions:
    """The conditions of one run's actions (`status` is the run's, kept up to date)."""

    def __init__(self, saga: CompiledSaga, status: RunStatus, inputs: Mapping[str, Any]) -> None:
        self._saga = saga
        self._status = status
        self._inputs = inputs
        self._conditions: dict[str, expressions.Expression] = {}
        self._uses: dict[str, frozenset[str]] = {}
        """Action -> the actions whose outputs it uses, for those that may be skipped."""
        self._evaluated: dict[str, InputError | None] = {}
        """Action -> what its evaluation raised (None: nothing), until `problem` asks."""
        self.any = False
        """Some action has a condition (most sagas have none: nothing to ask per action)."""
        skippable: set[str] = set()
        if not saga.conditional:
            return  # nothing can be skipped: every action runs
        self.any = True
        for name in saga.topological_order():  # a dependency is settled before its dependents
            spec = saga.actions[name]
            used = {ref.action for ref in references.walk(spec.with_) if ref.action}
            if spec.condition is not None:
                condition = expressions.parse_condition(spec.condition)
                self._conditions[name] = condition
                used |= {ref.action for ref, _ in condition.references() if ref.action}
            if spec.condition is not None or not skippable.isdisjoint(used):
                skippable.add(name)
                self._uses[name] = frozenset(used)

    def skip_reason(self, name: str) -> str | None:
        """Why `name`, ready to start, is skipped; None: it runs. A condition that cannot
        be evaluated lets it start: `problem` then fails it."""
        used = self._uses.get(name)
        if used is None:
            return None  # no condition, and nothing it uses can be skipped
        actions = self._status.actions
        skipped = sorted(a for a in used if actions[a].state is ActionState.SKIPPED)
        if skipped:
            listed = ", ".join(f"'{a}'" for a in skipped)
            return f"it uses outputs of {listed}, skipped"
        condition = self._conditions.get(name)
        if condition is None:
            return None
        try:
            holds = expressions.holds(condition, self._scope().lookup)
        except InputError as exc:
            self._evaluated[name] = exc
            return None
        self._evaluated[name] = None
        return None if holds else f"condition is false: {condition.text.strip()}"

    def problem(self, name: str) -> InputError | None:
        """Why `name`'s condition cannot be evaluated, if it cannot (it then fails, as a
        bad input). Evaluated again after a resume: the outcome is the same."""
        if name in self._evaluated:
            return self._evaluated.pop(name)
        condition = self._conditions.get(name)
        if condition is None:
            return None
        try:
            expressions.evaluate(condition, self._scope().lookup)
        except InputError as exc:
            return exc
        return None

    def _scope(self) -> references.Scope:
        status = self._status
        return references.Scope(status.run_id, self._saga.name, self._inputs, status.outputs())
