"""build.get_next_version, build.create_version, build.set_active_version: platform records."""

from __future__ import annotations

from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs

from .. import schemas as s


class GetNextVersion(Action):
    """Allocates `<app>-v<n>` and an artifact id, atomically in the store."""

    description = "Allocate the app's next version number"
    input_schema = s.obj({"app": s.APP})
    output_schema = s.obj(
        {
            "version": s.VERSION,
            "number": {"type": "integer", "minimum": 1},
            "artifact_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        }
    )

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        raise NotImplementedError


class CreateVersion(Action):
    """Records the version in the action's transaction (exactly once)."""

    description = "Record the built version"
    input_schema = s.obj(
        {
            "app": s.APP,
            "version": s.VERSION,
            "number": {"type": "integer", "minimum": 1},
            "artifact_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "image": s.PATH,
            "digest": s.DIGEST,
            "services": s.SERVICES,
            "source_dir": s.PATH,
        },
        ["app", "version", "number", "artifact_id", "image", "digest", "services"],
    )
    output_schema = s.obj({"version_id": s.VERSION})

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        raise NotImplementedError

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        raise NotImplementedError


class SetActiveVersion(Action):
    """Makes the version the app's active one (the pivot); compensation restores the previous."""

    description = "Activate the version"
    input_schema = s.obj({"app": s.APP, "version": s.VERSION})
    output_schema = s.obj({"previous_version": {"anyOf": [s.VERSION, {"type": "null"}]}})

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        raise NotImplementedError

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        raise NotImplementedError


def get_next_version_factory(deps: Dependencies) -> Action:
    return GetNextVersion()


def create_version_factory(deps: Dependencies) -> Action:
    return CreateVersion()


def set_active_version_factory(deps: Dependencies) -> Action:
    return SetActiveVersion()
