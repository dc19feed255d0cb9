"""build.stop_old_sandboxes: stop the sandboxes still running older versions of the app."""

from __future__ import annotations

from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs

from .. import records
from .. import schemas as s
from ..sandboxes import runtime_of, stop_sandbox


class StopOldSandboxes(Action):
    """Stops (SIGTERM, grace, SIGKILL) every sandbox of the app on an older version than
    `version`; retried forward, never compensated. Idempotent: a sandbox already gone is
    simply marked stopped."""

    description = "Stop sandboxes still running older versions"
    input_schema = s.obj({"app": s.APP, "version": s.VERSION})
    output_schema = s.obj(
        {"stopped": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}
    )

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        number = records.version_number(str(inputs["version"]))
        async with ctx.transaction() as tx:
            old = await records.running_sandboxes(tx, str(inputs["app"]), older_than=number)
        runtime = runtime_of(ctx.deps)
        stopped: list[str] = []
        for sandbox in old:
            await stop_sandbox(runtime, sandbox, ctx.deps)
            stopped.append(sandbox.id)
        async with ctx.transaction() as tx:
            for sandbox_id in stopped:
                await records.mark_sandbox(tx, sandbox_id, "stopped")
        return {"stopped": stopped}


def stop_old_sandboxes_factory(deps: Dependencies) -> StopOldSandboxes:
    return StopOldSandboxes()
