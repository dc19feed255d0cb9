"""acme.notify: the README's "Writing an action" example, a compensable action built by an
annotated factory."""

from __future__ import annotations

from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs

from . import FACTORY_CALLS


class HttpClient:
    """What the factory asks the container for."""


class Notify(Action):
    """Posts a notification."""

    input_schema = {
        "type": "object",
        "properties": {"url": {"type": "string"}, "retries": {"type": "integer"}},
        "required": ["url"],
    }
    output_schema = {"type": "object", "properties": {"status": {"type": "integer"}}}

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {"status": 200}

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        return None


def notify_factory(deps: Dependencies) -> Notify:
    FACTORY_CALLS.append("acme.notify")
    return Notify(deps.get(HttpClient))
