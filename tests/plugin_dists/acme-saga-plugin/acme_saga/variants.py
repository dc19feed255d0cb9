"""The other ways an action can be registered: a class, a factory with `action_class`, a plain
factory; a function giving a definitions folder; and a builder factory."""

from __future__ import annotations

from typing import Any

from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs

from . import FACTORY_CALLS


class Page(Action):
    """Pages the on-call engineer; cannot be taken back."""

    input_schema = {"type": "object", "properties": {"team": {"type": "string"}}}

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {}


class Audit(Action):
    description = "Writes an audit record"

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {}

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        return None


def audit_factory(deps: Dependencies):  # no annotation: `action_class` tells sagactl
    FACTORY_CALLS.append("acme.audit")
    return Audit()


audit_factory.action_class = Audit  # type: ignore[attr-defined]


class Ping(Action):
    """Answers pong."""

    output_schema = {"type": "object", "properties": {"pong": {"type": "boolean"}}}

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {"pong": True}


def ping_factory(deps: Dependencies) -> Action:  # only the base class: sagactl must call it
    FACTORY_CALLS.append("acme.ping")
    return Ping()


def more_definitions() -> str:
    """A definitions folder given by a function, relative to this module."""
    return "more_definitions"


def builder_factory(deps: Dependencies) -> dict[str, Any]:
    return {"builder": "acme", "deps": deps}
