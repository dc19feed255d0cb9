"""build.launch_buildkit and build.build_image: prepare the image builder, build the image."""

from __future__ import annotations

from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs

from .. import schemas as s

BUILDER_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,62}$"}


class LaunchBuildkit(Action):
    """Prepares (or connects to) the chosen image builder; compensation tears it down."""

    description = "Start or connect to the image builder for this build"
    input_schema = s.obj({"builder": BUILDER_NAME}, [])
    output_schema = s.obj({"builder": BUILDER_NAME, "endpoint": {"type": "string"}})

    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        raise NotImplementedError

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        raise NotImplementedError


class BuildImage(Action):
    """Builds the image with the chosen builder, streaming its output as progress."""

    description = "Build the app's image"
    input_schema = s.obj(
        {
            "app": s.APP,
            "source_dir": s.PATH,
            "stack": s.STACK,
            "config": s.CONFIG,
            "version": s.VERSION,
            "builder": BUILDER_NAME,
            "endpoint": {"type": "string"},
            "cluster_ip": {"type": "string", "minLength": 1},
        }
    )
    output_schema = s.obj({"image": s.PATH, "digest": s.DIGEST})

    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        raise NotImplementedError

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        raise NotImplementedError


def launch_buildkit_factory(deps: Dependencies) -> Action:
    return LaunchBuildkit(deps)


def build_image_factory(deps: Dependencies) -> Action:
    return BuildImage(deps)
