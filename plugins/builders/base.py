"""The Builder protocol every image builder implements, and what a build is given."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sagactl.engine.plugin_registry import Group, factory_group

from .references import InvalidReference, choose_base

_BUILD_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,127}")

OutputCallback = Callable[[str], None]
"""Called with each line the builder prints (without the newline)."""

DEFAULT_BASE_IMAGES: Mapping[str, str] = {}
"""Stack -> base image of the generated Containerfile, set by the operator
(`SAGACTL_BASE_IMAGE_<STACK>`). A stack without one builds on the base made here from
Debian packages (bases.py)."""
DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


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
    allowed_base_images: frozenset[str] = frozenset()
    """Further base images an app may name in app.toml (besides registry references)."""
    storage_driver: str = "auto"
    """buildah: `auto` is overlay where it works here, else vfs (storage.py says why)."""
    storage_root: Path | None = None
    """buildah `--root` (None: buildah's own configuration)."""
    run_root: Path | None = None
    isolation: str = "oci"
    """buildah: `oci` runs each RUN step in its own namespaces under `runtime`."""
    runtime: str = "runc"
    network: str = "outbound"
    """RUN steps' network: `outbound` (registries, never the host; buildnet.py) or `none`."""
    ca_bundle: Path | None = DEFAULT_CA_BUNDLE
    """Mounted read-only into RUN steps as the trusted CAs (None or missing: the base's own)."""
    debian_suite: str = "bookworm"
    debian_mirror: str = "http://deb.debian.org/debian"
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

    def __post_init__(self) -> None:
        # Both name files and images (`<work_dir>/oci/<version>`, `localhost/sagactl/APP:V`).
        for what, value in (("app", self.app), ("version", self.version)):
            if not isinstance(value, str) or not _BUILD_NAME.fullmatch(value):
                raise InvalidReference(f"{what} {value!r:.80} must match {_BUILD_NAME.pattern}")

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


def operator_base(ref: str | None, options: BuilderOptions) -> bool:
    """True when the operator configured `ref` (so it may name a local layout)."""
    return ref is not None and (
        ref in options.base_images.values() or ref in options.allowed_base_images
    )


def operator_bases(options: BuilderOptions) -> set[str]:
    """Every base image the operator configured (stack bases and the allow-list)."""
    return {*options.base_images.values(), *options.allowed_base_images}


def base_image_for(spec: BuildSpec, options: BuilderOptions) -> str | None:
    """The configured base of `spec`: the app's choice when allowed (InvalidReference when
    not), else the operator's for its stack; None: the base made here for the stack."""
    allowed = operator_bases(options)
    return choose_base(spec.base_image, options.base_images.get(spec.stack), allowed)


def options_from(source: Any) -> BuilderOptions:
    """The BuilderOptions a factory was given, directly or inside `Dependencies`."""
    if isinstance(source, BuilderOptions):
        return source
    options: BuilderOptions = source.get(BuilderOptions)
    return options
