"""The `buildah` builder: real Containerfile builds (RUN steps) with chroot isolation, no daemon.

Images land in buildah's own storage (driver and roots configurable; vfs by default, which
needs no overlay mounts), named `localhost/sagactl/APP:VERSION`, so `buildah images` (with
the same storage options) lists them. Apps without a Containerfile get the stack's template.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .base import (
    BuilderOptions,
    BuildSpec,
    BuiltImage,
    ImageBuildFailed,
    OutputCallback,
    options_from,
)
from .baseimage import buildah_args
from .process import run_quiet, run_streaming
from .templates import containerfile


class BuildahBuilder:
    name = "buildah"

    def __init__(self, options: BuilderOptions) -> None:
        self.options = options
        self.command = buildah_args(
            options.buildah, options.storage_driver, options.storage_root, options.run_root
        )
        self.files = options.work_dir / "buildah"

    def image_name(self, spec: BuildSpec) -> str:
        return f"localhost/sagactl/{spec.app}:{spec.version}"

    async def prepare(self) -> str:
        if shutil.which(self.options.buildah) is None:
            raise ImageBuildFailed(f"{self.options.buildah} is not installed")
        for directory in (self.files, self.options.storage_root, self.options.run_root):
            if directory is not None:
                directory.mkdir(parents=True, exist_ok=True)
        status, output = await run_quiet([*self.command, "version"])
        if status != 0:
            raise ImageBuildFailed(f"buildah does not work here: {output.strip()}")
        root = self.options.storage_root or "default storage"
        return f"buildah:{self.options.storage_driver}:{root}"

    async def teardown(self) -> None:
        """buildah runs no daemon: nothing to stop."""

    def _containerfile(self, spec: BuildSpec) -> Path:
        if spec.containerfile is not None:
            return spec.containerfile
        base = spec.base_image or self.options.base_images.get(spec.stack)
        if not base:
            raise ImageBuildFailed(f"no base image configured for the {spec.stack} stack")
        self.files.mkdir(parents=True, exist_ok=True)
        path = self.files / f"{spec.version}.Containerfile"
        path.write_text(containerfile(spec, base))
        return path

    async def build(self, spec: BuildSpec, on_output: OutputCallback) -> BuiltImage:
        name = self.image_name(spec)
        recipe = self._containerfile(spec)
        argv = [
            *self.command,
            "build",
            "--isolation",
            self.options.isolation,
            "--file",
            str(recipe),
            "--tag",
            name,
        ]
        for host, ip in spec.extra_hosts.items():
            argv += ["--add-host", f"{host}:{ip}"]
        for key, value in spec.labels.items():
            argv += ["--label", f"{key}={value}"]
        if spec.containerfile is not None:
            for key, value in spec.env.items():
                argv += ["--env", f"{key}={value}"]
        argv.append(str(spec.context_dir))
        try:
            await run_streaming(argv, on_output, what=f"buildah build of {spec.version}")
        finally:
            if spec.containerfile is None:
                recipe.unlink(missing_ok=True)
        status, output = await run_quiet(
            [*self.command, "inspect", "--type", "image", "--format", "{{.FromImageDigest}}", name]
        )
        digest = output.strip()
        if status != 0 or not digest.startswith("sha256:"):
            raise ImageBuildFailed(f"buildah built {name} but cannot inspect it: {output.strip()}")
        return BuiltImage(name, digest)

    async def remove_image(self, ref: str) -> bool:
        status, _ = await run_quiet([*self.command, "rmi", ref])
        return status == 0


def buildah_factory(deps: Any) -> BuildahBuilder:
    """Entry point: `Dependencies` holding a BuilderOptions, or the options themselves."""
    return BuildahBuilder(options_from(deps))
