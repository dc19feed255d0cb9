"""The generated Containerfile of an app without one: manifests, install, source, command."""

from __future__ import annotations

from .base import BuildSpec
from .containerfile import Containerfile
from .stacks import InstallPlan

APP_DIR = "/app"


def containerfile(spec: BuildSpec, base_image: str, plan: InstallPlan) -> str:
    """The Containerfile for `spec` on `base_image`, serialised value by value.

    What a source-only change leaves alone comes first, so its layers are reused: the
    manifests and their install, then the settings, then the source (and its compile).
    Labels (which name the version) are given to buildah as `--label`, not written here."""
    recipe = Containerfile(base_image)
    recipe.workdir(APP_DIR)
    if plan.manifests:
        recipe.copy(plan.manifests, f"{APP_DIR}/")
    for step in plan.install:
        recipe.run(step)
    recipe.env({**plan.env, "PORT": str(spec.port or 8080), **spec.env})
    if spec.port:
        recipe.expose(spec.port)
    if spec.command:
        recipe.cmd(["/bin/sh", "-c", spec.command])
    recipe.copy(["."], APP_DIR)
    for step in plan.build:
        recipe.run(step)
    return recipe.render()


def ignore_file(plan: InstallPlan) -> str:
    """The .containerignore of `COPY .`: what the install made stays as it made it."""
    return "".join(f"{path}\n" for path in plan.ignore)
