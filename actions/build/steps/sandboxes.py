"""build.stop_old_sandboxes: stop the sandboxes still running older versions of the app."""

from __future__ import annotations

from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs

from .. import schemas as s


class StopOldSandboxes(Action):
    """Stops (SIGTERM, grace, SIGKILL) every sandbox of the app not on `version`; retried
    forward, never compensated."""

    description = "Stop sandboxes still running older versions"
    input_schema = s.obj({"app": s.APP, "version": s.VERSION})
    output_schema = s.obj(
        {"stopped": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}
    )

    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        raise NotImplementedError


def stop_old_sandboxes_factory(deps: Dependencies) -> Action:
    return StopOldSandboxes(deps)
