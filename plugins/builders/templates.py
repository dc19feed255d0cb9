"""The generated Containerfile of an app without one: manifests, install, source, command.

Two parts: the dependency stage (the base, the manifests and their install, the settings)
depends only on the manifests; the app stage (the source and its compile) on the rest. The
buildah builder builds them as two images, so a source-only rebuild runs only the second
(`FROM` the first), without even checking the first one's instructions against the cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import safefs
from .base import BuildSpec
from .containerfile import Containerfile
from .stacks import MAX_MANIFEST, InstallPlan

APP_DIR = "/app"


def _dependencies(recipe: Containerfile, spec: BuildSpec, plan: InstallPlan) -> None:
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


def _source(recipe: Containerfile, plan: InstallPlan) -> None:
    recipe.copy(["."], APP_DIR)
    for step in plan.build:
        recipe.run(step)


def containerfile(spec: BuildSpec, base_image: str, plan: InstallPlan) -> str:
    """The Containerfile for `spec` on `base_image`, serialised value by value, in one stage.

    What a source-only change leaves alone comes first, so its layers are reused: the
    manifests and their install, then the settings, then the source (and its compile).
    Labels (which name the version) are given to the builder, not written here."""
    recipe = Containerfile(base_image)
    _dependencies(recipe, spec, plan)
    _source(recipe, plan)
    return recipe.render()


def dependencies_containerfile(spec: BuildSpec, base_image: str, plan: InstallPlan) -> str:
    """The dependency stage: everything but the source."""
    recipe = Containerfile(base_image)
    _dependencies(recipe, spec, plan)
    return recipe.render()


def source_containerfile(dependencies_image: str, plan: InstallPlan) -> str:
    """The app stage on the dependency image: the source and its compile."""
    recipe = Containerfile(dependencies_image)
    _source(recipe, plan)
    return recipe.render()


def dependencies_key(recipe: str, context: Path, plan: InstallPlan) -> str:
    """What the dependency image is made of: its recipe and its manifests' bytes (read
    beneath the app's folder, bounded)."""
    digest = hashlib.sha256(recipe.encode())
    root = context.resolve()
    for name in plan.manifests:
        body = safefs.read_beneath(root, name, MAX_MANIFEST)
        digest.update(f"\0{name}\0{len(body)}\0".encode())
        digest.update(body)
    return digest.hexdigest()


def ignore_file(plan: InstallPlan) -> str:
    """The .containerignore of `COPY .`: what the install made stays as it made it."""
    return "".join(f"{path}\n" for path in plan.ignore)
