"""build.load_config, build.detect_stack, build.parse_services: read the unpacked source."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs

from .. import appconfig, procfile, stack
from .. import schemas as s
from ..values import mapping, text


class LoadConfig(Action):
    """Reads app.toml (root or .sagactl/app.toml) if present; line:column errors."""

    description = "Read the app's app.toml, if any"
    input_schema = s.obj({"source_dir": s.PATH})
    output_schema = s.obj({"config": s.CONFIG})

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        source = Path(text(inputs["source_dir"]))
        return {"config": await anyio.to_thread.run_sync(appconfig.load, source)}


class DetectStack(Action):
    """Finds the app's stack from its files (a Dockerfile wins)."""

    description = "Detect the stack: dockerfile, python, node, bun, go, ruby, rust or static"
    input_schema = s.obj({"source_dir": s.PATH, "config": s.CONFIG})
    output_schema = s.obj({"stack": s.STACK})

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        source = Path(text(inputs["source_dir"]))
        found = await anyio.to_thread.run_sync(stack.detect, source, mapping(inputs["config"]))
        return {"stack": found}


class ParseServices(Action):
    """Parses the Procfile and merges app.toml services (build_image adds the stack's
    default web command when the app declares none)."""

    description = "Parse the Procfile and app.toml services"
    input_schema = s.obj({"source_dir": s.PATH, "config": s.CONFIG})
    output_schema = s.obj({"services": s.SERVICES})

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        source = Path(text(inputs["source_dir"]))
        services = await anyio.to_thread.run_sync(
            procfile.declared, source, mapping(inputs["config"])
        )
        return {"services": services}


def load_config_factory(deps: Dependencies) -> LoadConfig:
    return LoadConfig()


def detect_stack_factory(deps: Dependencies) -> DetectStack:
    return DetectStack()


def parse_services_factory(deps: Dependencies) -> ParseServices:
    return ParseServices()
