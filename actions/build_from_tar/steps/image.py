"""build.launch_buildkit and build.build_image: prepare the image builder, build the image."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio.to_thread
from sagactl.engine import Action, ActionContext, Dependencies, FatalError, Inputs, Outputs
from sagactl.plugins.builders import stacks as stack_plans
from sagactl.plugins.builders.base import Builder, BuildSpec, ImageBuildFailed

from .. import backends, procfile, stack
from .. import schemas as s
from ..settings import settings_of
from ..step_spans import StepSpans
from ..values import mapping, maybe_text, text

BUILDER_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,62}$"}
_STEP = re.compile(r"^STEP (\d+)/(\d+)")


def _builder(ctx: ActionContext, name: str) -> Builder:
    return backends.builder(name, settings_of(ctx.deps))


class LaunchBuildkit(Action):
    """Prepares (or connects to) the chosen image builder; compensation tears it down."""

    description = "Start or connect to the image builder for this build"
    input_schema = s.obj({"builder": BUILDER_NAME}, [])
    output_schema = s.obj({"builder": BUILDER_NAME, "endpoint": {"type": "string"}})

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        settings = settings_of(ctx.deps)
        name = maybe_text(inputs.get("builder")) or settings.builder or backends.default_builder()
        builder = _builder(ctx, name)
        try:
            endpoint = await builder.prepare()
        except ImageBuildFailed as exc:
            raise FatalError(f"image builder {name!r} is not usable: {exc}") from None
        return {"builder": name, "endpoint": endpoint}

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        await _builder(ctx, str(outputs["builder"])).teardown()


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
            "services": s.SERVICES,
        }
    )
    output_schema = s.obj({"image": s.PATH, "digest": s.DIGEST, "services": s.SERVICES})
    """`services` as the image runs them: the declared ones, or the stack's default web."""

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        settings = settings_of(ctx.deps)
        services = await anyio.to_thread.run_sync(_services, inputs)
        spec = await anyio.to_thread.run_sync(_spec, inputs, services, settings.cluster.host)
        builder = _builder(ctx, str(inputs["builder"]))

        steps = StepSpans(ctx.tracer, str(inputs["builder"]))

        def on_output(line: str) -> None:
            step = _STEP.match(line)
            fraction = int(step[1]) / int(step[2]) if step else None
            ctx.progress(fraction, line)
            steps.line(line)

        try:
            built = await builder.build(spec, on_output)
        except ImageBuildFailed as exc:
            steps.close(exc)
            raise FatalError(f"building {spec.version} failed: {exc}") from None
        except BaseException as exc:
            steps.close(exc)
            raise
        steps.close()
        return {"image": built.ref, "digest": built.digest, "services": services}

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        image = outputs.get("image")
        if not image:
            return
        async with ctx.transaction() as tx:
            used = await tx.fetchone("SELECT id FROM versions WHERE image = ?", (image,))
        if used is not None:
            ctx.log.info("image kept: a version uses it", image=image, version=used[0])
            return
        await _builder(ctx, str(inputs["builder"])).remove_image(str(image))


def _services(inputs: Inputs) -> dict[str, dict[str, Any]]:
    """The declared services, else the stack's default web command (a Dockerfile app: its
    image's CMD, command None); MissingCommand when the stack has no obvious one."""
    declared = {name: dict(mapping(body)) for name, body in mapping(inputs["services"]).items()}
    app_stack = str(inputs["stack"])
    web = declared.get("web")
    if app_stack == "dockerfile":
        if web is None:  # its image's own CMD serves on $PORT
            declared["web"] = {"command": None, "port": procfile.DEFAULT_PORT}
        return declared
    if declared and (web is None or web["command"] is not None):
        return declared
    # No services, or app.toml's [services.web] gives only a port or a health path.
    command = stack_plans.default_web(app_stack, Path(text(inputs["source_dir"])))
    if web is None:
        return {"web": {"command": command, "port": procfile.DEFAULT_PORT}}
    web["command"] = command
    return declared


def _spec(inputs: Inputs, services: dict[str, dict[str, Any]], cluster_host: str) -> BuildSpec:
    source = Path(text(inputs["source_dir"]))
    config: dict[str, Any] = dict(mapping(inputs["config"]))
    app_stack = str(inputs["stack"])
    web = services.get("web")
    return BuildSpec(
        app=str(inputs["app"]),
        version=str(inputs["version"]),
        context_dir=source,
        stack=app_stack,
        containerfile=stack.dockerfile_of(source, config) if app_stack == "dockerfile" else None,
        base_image=config["build"].get("base_image"),
        command=web["command"] if web else None,
        port=web["port"] if web else None,
        env=dict(config.get("env") or {}),
        extra_hosts={cluster_host: str(inputs["cluster_ip"])},
        labels={
            "org.opencontainers.image.title": str(inputs["app"]),
            "org.opencontainers.image.version": str(inputs["version"]),
        },
    )


def launch_buildkit_factory(deps: Dependencies) -> LaunchBuildkit:
    return LaunchBuildkit()


def build_image_factory(deps: Dependencies) -> BuildImage:
    return BuildImage()
