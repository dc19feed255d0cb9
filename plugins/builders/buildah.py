"""The `buildah` builder: real Containerfile builds whose RUN steps run sandboxed under runc.

Every RUN step runs with `--isolation oci --runtime runc`: its own PID, mount, IPC, UTS and
network namespaces, no capabilities, and a network that reaches the registries but not the
host (buildnet.py), with the operator's CA bundle mounted read-only. Images land in
buildah's own storage (overlay where it works here, storage.py), named
`localhost/sagactl/APP:VERSION`; apps without a Containerfile get the stack's template on
the stack's base (bases.py) unless the operator configured one. Layers are cached
(`--layers`), so a build whose manifests did not change reuses its dependency install.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread

from . import bases, buildnet, stacks, storage, uploaded
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
from .baseimage import buildah_args
from .process import run_quiet, run_streaming
from .references import check_digest
from .templates import containerfile, ignore_file


class BuildahBuilder:
    name = "buildah"

    def __init__(self, options: BuilderOptions) -> None:
        self.options = options
        self.command = buildah_args(
            options.buildah, options.storage_driver, options.storage_root, options.run_root
        )
        self.files = options.work_dir / "buildah"
        self.storage = storage.resolve(
            options.buildah, options.storage_driver, options.storage_root, options.run_root
        )

    def image_name(self, spec: BuildSpec) -> str:
        return f"localhost/sagactl/{spec.app}:{spec.version}"

    async def prepare(self) -> str:
        for tool in (self.options.buildah, self.options.runtime):
            if shutil.which(tool) is None:
                raise ImageBuildFailed(f"{tool} is not installed (scripts/setup installs it)")
        if self.options.network == "outbound" and buildnet.missing_tools():
            missing = ", ".join(buildnet.missing_tools())
            raise ImageBuildFailed(f"the outbound build network needs {missing} (scripts/setup)")
        for directory in (self.files, self.options.storage_root, self.options.run_root):
            if directory is not None:
                directory.mkdir(parents=True, exist_ok=True)
        status, output = await run_quiet([*self.command, "version"])
        if status != 0:
            raise ImageBuildFailed(f"buildah does not work here: {output.strip()}")
        root = self.options.storage_root or "default storage"
        return f"buildah:{self.storage.driver}:{root}"

    async def teardown(self) -> None:
        """buildah runs no daemon: nothing to stop."""

    async def base_image(self, spec: BuildSpec, on_output: OutputCallback) -> str:
        """The configured base (the app's, if allowed), else the stack's made base."""
        chosen = base_image_for(spec, self.options)
        if chosen is not None:
            return chosen
        return await bases.ensure(spec.stack, self.options, self.command, on_output)

    async def _recipe(self, spec: BuildSpec, on_output: OutputCallback) -> tuple[Path, list[str]]:
        """The Containerfile and the extra build arguments of `spec`."""
        # buildah takes --label values literally (unlike --env, which expands `$`).
        labels = [f"--label={key}={value}" for key, value in spec.labels.items()]
        if spec.containerfile is not None:
            allowed = operator_bases(self.options)
            await anyio.to_thread.run_sync(
                uploaded.check_file, spec.context_dir, spec.containerfile, allowed
            )
            return spec.containerfile, labels
        plan = await anyio.to_thread.run_sync(stacks.plan, spec.stack, spec.context_dir)
        text = containerfile(spec, await self.base_image(spec, on_output), plan)
        self.files.mkdir(parents=True, exist_ok=True)
        recipe = self.files / f"{spec.version}.Containerfile"
        ignore = self.files / f"{spec.version}.containerignore"
        recipe.write_text(text)
        ignore.write_text(ignore_file(plan))
        return recipe, [*labels, "--ignorefile", str(ignore)]

    @contextlib.asynccontextmanager
    async def _network(self) -> AsyncIterator[list[str]]:
        """buildah's network arguments for one build's RUN steps."""
        if self.options.network == "outbound":
            async with buildnet.outbound_network() as network:
                # slirp's own resolver: works even when the host's is on its loopback.
                yield ["--network", network, "--dns", buildnet.SLIRP_DNS]
        elif self.options.network == "none":
            yield ["--network", "none"]
        else:
            raise ImageBuildFailed(
                f"unknown build network {self.options.network!r} (outbound, none)"
            )

    def _sandbox_args(self) -> list[str]:
        args = [
            "--isolation",
            self.options.isolation,
            "--runtime",
            self.options.runtime,
            "--cap-drop",
            "ALL",
        ]
        bundle = self.options.ca_bundle
        if bundle is not None and bundle.is_file():
            args += ["--volume", f"{bundle.resolve()}:{stacks.CA_PATH}:ro"]
        return args

    async def build(self, spec: BuildSpec, on_output: OutputCallback) -> BuiltImage:
        name = self.image_name(spec)
        on_output(f"buildah storage: {self.storage.why}")
        recipe, extra = await self._recipe(spec, on_output)
        argv = [
            *self.command,
            "build",
            *self._sandbox_args(),
            "--layers",
            "--force-rm",  # a failed step's container (and its mount) goes too
            "--pull=missing",
            "--file",
            str(recipe),
            "--tag",
            name,
            *extra,
        ]
        for host, ip in spec.extra_hosts.items():
            argv += ["--add-host", f"{host}:{ip}"]
        try:
            async with self._network() as network:
                argv += [*network, str(spec.context_dir)]
                await run_streaming(argv, on_output, what=f"buildah build of {spec.version}")
        finally:
            if spec.containerfile is None:
                recipe.unlink(missing_ok=True)
                recipe.with_suffix(".containerignore").unlink(missing_ok=True)
        status, output = await run_quiet(
            [*self.command, "inspect", "--type", "image", "--format", "{{.FromImageDigest}}", name]
        )
        digest = output.strip()
        if status != 0 or not digest.startswith("sha256:"):
            raise ImageBuildFailed(f"buildah built {name} but cannot inspect it: {digest[-300:]}")
        return BuiltImage(name, check_digest(digest))

    async def remove_image(self, ref: str) -> bool:
        status, _ = await run_quiet([*self.command, "rmi", ref])
        return status == 0


def buildah_factory(deps: Any) -> BuildahBuilder:
    """Entry point: `Dependencies` holding a BuilderOptions, or the options themselves."""
    return BuildahBuilder(options_from(deps))
