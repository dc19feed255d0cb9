"""The Builder protocol every image builder implements, and what a build is given."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sagactl.engine.plugin_registry import Group, factory_group

OutputCallback = Callable[[str], None]
"""Called with each line the builder prints (without the newline)."""

DEFAULT_BASE_IMAGES: Mapping[str, str] = {
    "python": "docker.io/library/python:3.12-slim",
    "node": "docker.io/library/node:22-slim",
    "bun": "docker.io/oven/bun:1",
    "go": "docker.io/library/golang:1.22",
    "ruby": "docker.io/library/ruby:3.3-slim",
    "rust": "docker.io/library/rust:1-slim",
    "static": "localhost/sagactl/busybox:latest",
}
"""Stack -> base image of the generated Containerfile; override per builder or per app
(app.toml `build.base_image`). Offline, point them at a locally made image (baseimage.py)."""


class ImageBuildFailed(Exception):
    """The builder ran and the build failed (a RUN step, a bad Containerfile)."""

    def __init__(self, message: str, output_tail: str = "") -> None:
        super().__init__(message)
        self.output_tail = output_tail


@dataclass(frozen=True, slots=True)
class BuilderOptions:
    """How a builder is set up; every builder reads the fields it needs."""

    work_dir: Path
    """Where builders keep their state (the oci builder's image layouts)."""
    base_images: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_BASE_IMAGES))
    storage_driver: str = "vfs"
    """buildah: vfs works everywhere, without a daemon or overlay mounts."""
    storage_root: Path | None = None
    """buildah `--root` (None: buildah's own configuration)."""
    run_root: Path | None = None
    isolation: str = "chroot"
    buildkit_addr: str | None = None
    """buildkit: the buildkitd address (e.g. `tcp://buildkitd:1234`)."""
    buildctl: str = "buildctl"
    buildah: str = "buildah"


@dataclass(frozen=True, slots=True)
class BuildSpec:
    """One image to build."""

    app: str
    version: str
    context_dir: Path
    stack: str
    containerfile: Path | None = None
    """The app's own Containerfile/Dockerfile; None: the stack's template."""
    base_image: str | None = None
    """Overrides the builder's base image for the stack."""
    command: str | None = None
    """The web command (entrypoint); None keeps the base's or the Containerfile's."""
    port: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    """Host name -> IP, visible to RUN steps (e.g. cluster.local)."""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return self.version


@dataclass(frozen=True, slots=True)
class BuiltImage:
    ref: str
    """Where the image is: `oci:DIR:TAG`, `localhost/sagactl/APP:VERSION`, a registry ref."""
    digest: str
    """`sha256:...` of the image manifest."""


@runtime_checkable
class Builder(Protocol):
    name: str

    async def prepare(self) -> str:
        """Start or connect to the builder; returns its endpoint (empty when in-process)."""
        ...

    async def teardown(self) -> None:
        """Undo `prepare` (stop what it started); safe to call twice."""
        ...

    async def build(self, spec: BuildSpec, on_output: OutputCallback) -> BuiltImage: ...

    async def remove_image(self, ref: str) -> bool:
        """Remove a built image; False when it was not there."""
        ...


BuilderFactory = Callable[[Any], Builder]
"""What a `sagactl.builders` entry point names: called with the plugin `Dependencies`
(holding a `BuilderOptions`) or with a `BuilderOptions` directly."""

BUILDERS: Group[BuilderFactory] = factory_group("sagactl.builders", "builder")
"""The image builders' entry-point group, declared to the plugin registry (`sagactl.groups`)."""


def options_from(source: Any) -> BuilderOptions:
    """The BuilderOptions a factory was given, directly or inside `Dependencies`."""
    if isinstance(source, BuilderOptions):
        return source
    options: BuilderOptions = source.get(BuilderOptions)
    return options
