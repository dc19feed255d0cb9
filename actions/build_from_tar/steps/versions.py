"""build.get_next_version, build.create_version, build.set_active_version: platform records."""

from __future__ import annotations

from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs

from .. import records
from .. import schemas as s
from ..entry import upload_source_dir
from ..values import integer, mapping, maybe_text

ARTIFACT_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}


class GetNextVersion(Action):
    """Allocates `<app>-v<n>` and an artifact id, atomically in the store."""

    description = "Allocate the app's next version number"
    input_schema = s.obj({"app": s.APP})
    output_schema = s.obj(
        {
            "version": s.VERSION,
            "number": {"type": "integer", "minimum": 1},
            "artifact_id": ARTIFACT_ID,
        }
    )

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        async with ctx.transaction() as tx:
            allocated = await records.allocate_version(tx, str(inputs["app"]))
        return {
            "version": allocated.version,
            "number": allocated.number,
            "artifact_id": allocated.artifact_id,
        }


class CreateVersion(Action):
    """Records the version in the action's transaction (exactly once)."""

    description = "Record the built version"
    input_schema = s.obj(
        {
            "app": s.APP,
            "version": s.VERSION,
            "number": {"type": "integer", "minimum": 1},
            "artifact_id": ARTIFACT_ID,
            "image": s.PATH,
            "digest": s.DIGEST,
            "services": s.SERVICES,
            "source_dir": s.PATH,
        },
        ["app", "version", "number", "artifact_id", "image", "digest", "services"],
    )
    output_schema = s.obj({"version_id": s.VERSION})

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        async with ctx.transaction() as tx:
            await records.create_version(
                tx,
                app=str(inputs["app"]),
                version=str(inputs["version"]),
                number=integer(inputs["number"]),
                artifact_id=str(inputs["artifact_id"]),
                image=str(inputs["image"]),
                digest=str(inputs["digest"]),
                services=dict(mapping(inputs["services"])),
                source_dir=maybe_text(inputs.get("source_dir")) or upload_source_dir(ctx),
                run_id=ctx.run_id,
            )
        return {"version_id": str(inputs["version"])}

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        async with ctx.transaction() as tx:
            await records.delete_version(tx, str(inputs["version"]))


class SetActiveVersion(Action):
    """Makes the version the app's active one (the pivot); compensation restores the previous.

    Activation only moves forward: the active version is the highest number, that is the
    last build submitted (numbers are allocated at submission). When a newer version is
    already active (builds finishing out of order), it stays: this build still succeeds
    (its version is built and recorded, and can be activated by a rollback), with
    `activated` false and `active_version` naming the newer one. With `rollback` (the
    rollback saga) it activates an earlier version on purpose.
    """

    description = "Activate the version"
    input_schema = s.obj(
        {"app": s.APP, "version": s.VERSION, "rollback": {"type": "boolean"}}, ["app", "version"]
    )
    output_schema = s.obj(
        {
            "previous_version": {"anyOf": [s.VERSION, {"type": "null"}]},
            "active_version": s.VERSION,
            "activated": {"type": "boolean"},
        },
        ["previous_version"],
    )

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        version = str(inputs["version"])
        async with ctx.transaction() as tx:
            previous, changed = await records.activate(
                tx, str(inputs["app"]), version, rollback=bool(inputs.get("rollback"))
            )
        if not changed:
            ctx.log.info("a newer version is already active", active=previous)
        active = version if changed or previous is None else previous
        return {"previous_version": previous, "active_version": active, "activated": changed}

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        async with ctx.transaction() as tx:
            await records.restore_active(
                tx,
                str(inputs["app"]),
                str(inputs["version"]),
                maybe_text(outputs.get("previous_version")),
            )


def get_next_version_factory(deps: Dependencies) -> GetNextVersion:
    return GetNextVersion()


def create_version_factory(deps: Dependencies) -> CreateVersion:
    return CreateVersion()


def set_active_version_factory(deps: Dependencies) -> SetActiveVersion:
    return SetActiveVersion()
