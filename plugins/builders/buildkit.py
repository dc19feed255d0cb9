"""The `buildkit` builder: `buildctl` against a configured buildkitd address.

buildkitd itself is not started here (it needs privileges and a daemon); `prepare` checks
that the configured one answers (`buildctl debug workers`). Images are exported as OCI
layout tarballs under the work dir, so no registry is needed.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

from . import stacks, uploaded
from .base import (
    BuilderOptions,
    BuildSpec,
    BuiltImage,
    ImageBuildFailed,
    OutputCallback,
    base_image_for,
    operator_bases,
    options_from,
)
from .process import run_quiet, run_streaming
from .templates import containerfile


class BuildkitBuilder:
    name = "buildkit"

    def __init__(self, options: BuilderOptions) -> None:
        self.options = options
        self.root = options.work_dir / "buildkit"

    def _base(self) -> list[str]:
        if not self.options.buildkit_addr:
            raise ImageBuildFailed("the buildkit builder needs a buildkitd address (buildkit_addr)")
        return [self.options.buildctl, "--addr", self.options.buildkit_addr]

    async def prepare(self) -> str:
        argv = self._base()
        if shutil.which(self.options.buildctl) is None:
            raise ImageBuildFailed(f"{self.options.buildctl} is not installed")
        status, output = await run_quiet([*argv, "debug", "workers"])
        if status != 0:
            raise ImageBuildFailed(
                f"buildkitd at {self.options.buildkit_addr} does not answer: {output.strip()}"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        return str(self.options.buildkit_addr)

    async def teardown(self) -> None:
        """The buildkitd is shared and configured, not ours: it stays up."""

    async def build(self, spec: BuildSpec, on_output: OutputCallback) -> BuiltImage:
        argv = self._base()
        self.root.mkdir(parents=True, exist_ok=True)
        if spec.containerfile is not None:
            allowed = operator_bases(self.options)
            uploaded.check_file(spec.context_dir, spec.containerfile, allowed)
            recipe_dir = spec.containerfile.parent
            filename = spec.containerfile.name
        else:
            base = base_image_for(spec, self.options)
            if not base:
                raise ImageBuildFailed(f"no base image configured for the {spec.stack} stack")
            recipe_dir = self.root / f"{spec.version}.recipe"
            recipe_dir.mkdir(exist_ok=True)
            filename = "Containerfile"
            plan = stacks.plan(spec.stack, spec.context_dir)
            (recipe_dir / filename).write_text(containerfile(spec, base, plan))
        output = self.root / f"{spec.version}.oci.tar"
        metadata = self.root / f"{spec.version}.metadata.json"
        argv += [
            "build",
            "--progress",
            "plain",
            "--frontend",
            "dockerfile.v0",
            "--local",
            f"context={spec.context_dir}",
            "--local",
            f"dockerfile={recipe_dir}",
            "--opt",
            f"filename={filename}",
            "--output",
            f"type=oci,dest={output},name=sagactl/{spec.app}:{spec.version}",
            "--metadata-file",
            str(metadata),
        ]
        for host, ip in spec.extra_hosts.items():
            argv += ["--opt", f"add-hosts={host}={ip}"]
        for key, value in spec.labels.items():
            argv += ["--opt", f"label:{key}={value}"]
        await run_streaming(argv, on_output, what=f"buildctl build of {spec.version}")
        digest = _digest(metadata, output)
        return BuiltImage(f"oci-archive:{output}", digest)

    async def remove_image(self, ref: str) -> bool:
        path = Path(ref.removeprefix("oci-archive:"))
        return path.is_relative_to(self.root) and _unlink(path)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _digest(metadata: Path, archive: Path) -> str:
    """The manifest digest from buildctl's metadata file, else from the archive's index."""
    try:
        found = json.loads(metadata.read_text()).get("containerimage.digest")
        if isinstance(found, str) and found.startswith("sha256:"):
            return found
    except (OSError, ValueError):
        pass
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("index.json")
            if member is not None:
                digest = json.load(member)["manifests"][0]["digest"]
                if isinstance(digest, str):
                    return digest
    except (OSError, KeyError, IndexError, ValueError, tarfile.TarError):
        pass
    raise ImageBuildFailed(f"buildctl wrote no image digest for {archive.name}")


def buildkit_factory(deps: Any) -> BuildkitBuilder:
    """Entry point: `Dependencies` holding a BuilderOptions, or the options themselves."""
    return BuildkitBuilder(options_from(deps))
