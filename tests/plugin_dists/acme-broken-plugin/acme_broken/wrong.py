"""Entry points that import fine but name the wrong things."""

from __future__ import annotations

from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs


def not_an_action(deps: Dependencies) -> str:
    return "surprise"


class BadSchema(Action):
    input_schema = {"type": "object", "properties": {"n": {"type": "nonsense"}}}

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {}


class Clock:
    """Provided by the host application, not by sagactl."""


class Tick(Action):
    """Needs a clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {}


def needs_deps_factory(deps: Dependencies) -> Action:
    return Tick(deps.get(Clock))


def not_a_command() -> str:
    return "not a command"
