"""The `buildah` builder: real Containerfile builds whose RUN steps run sandboxed under runc.

Every RUN step runs with `--isolation oci --runtime runc`: its own PID, mount, IPC, UTS and
network namespaces, no capabilities, and a network that reaches the registries but not the
host (buildnet.py), with the operator's CA bundle mounted read-only. Images land in
buildah's own storage (overlay where it works here, storage.py), named
`localhost/sagactl/APP:VERSION`. Apps without a Containerfile get the stack's template on
the stack's base (bases.py) unless the operator configured one, built as two images
(templates.py): the dependencies, named by their recipe and manifests and made only when
missing, then the source on them; so a build whose manifests did not change runs only the
source's steps. Layers are cached too (`--layers`).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread

from . import bases, buildnet, stacks, storage, templates, uploaded
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

    def base_image(self, spec: BuildSpec) -> str | None:
        """The configured base (the app's, if allowed), else the name of the stack's made
        base (made or not yet: `ensure_base`); None for a stack that has none here."""
        chosen = base_image_for(spec, self.options)
        if chosen is not None:
            return chosen
        return bases.image_name(spec.stack, self.options) if spec.stack in bases.STACKS else None

    async def ensure_base(self, spec: BuildSpec, on_output: OutputCallback) -> str:
        """The base of `spec`, the stack's made first when missing."""
        chosen = base_image_for(spec, self.options)
        if chosen is not None:
            return chosen
        return await bases.ensure(spec.stack, self.options, self.command, on_output)

    @contextlib.asynccontextmanager
    async def _network(self, needed: bool = True) -> AsyncIterator[list[str]]:
        """buildah's network arguments for one build's RUN steps (none without any)."""
        if self.options.network not in ("outbound", "none"):
            raise ImageBuildFailed(
                f"unknown build network {self.options.network!r} (outbound, none)"
            )
        if self.options.network == "outbound" and needed:
            async with buildnet.outbound_network() as network:
                # slirp's own resolver: works even when the host's is on its loopback.
                yield ["--network", network, "--dns", buildnet.SLIRP_DNS]
        else:
            yield ["--network", "none"]

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
        # buildah takes --label values literally (unlike --env, which expands `$`).
        labels = [f"--label={key}={value}" for key, value in spec.labels.items()]
        if spec.containerfile is not None:
            allowed = operator_bases(self.options)
            await anyio.to_thread.run_sync(
                uploaded.check_file, spec.context_dir, spec.containerfile, allowed
            )
            await self._build(spec, spec.containerfile, name, labels, True, on_output)
        else:
            await self._build_generated(spec, name, labels, on_output)
        status, output = await run_quiet(
            [*self.command, "inspect", "--type", "image", "--format", "{{.FromImageDigest}}", name]
        )
        digest = output.strip()
        if status != 0 or not digest.startswith("sha256:"):
            raise ImageBuildFailed(f"buildah built {name} but cannot inspect it: {digest[-300:]}")
        return BuiltImage(name, check_digest(digest))

    async def _build_generated(
        self, spec: BuildSpec, name: str, labels: list[str], on_output: OutputCallback
    ) -> None:
        """The stack's template in two images: the dependency stage, named by what it is
        made of and built only when no image has that name yet, then the source on it."""
        plan = await anyio.to_thread.run_sync(stacks.plan, spec.stack, spec.context_dir)
        base = self.base_image(spec) or await self.ensure_base(spec, on_output)
        text = templates.dependencies_containerfile(spec, base, plan)
        key = await anyio.to_thread.run_sync(
            templates.dependencies_key, text, spec.context_dir, plan
        )
        dependencies = f"localhost/sagactl/deps-{spec.app}:{key[:24]}"
        self.files.mkdir(parents=True, exist_ok=True)
        ignore = self.files / f"{spec.version}.containerignore"
        recipe = self.files / f"{spec.version}.Containerfile"
        ignore.write_text(templates.ignore_file(plan))
        extra = ["--ignorefile", str(ignore)]
        try:
            if await bases.exists(self.command, dependencies):
                on_output(f"dependencies unchanged: building on {dependencies}")
            else:
                await self.ensure_base(spec, on_output)
                recipe.write_text(text)
                await self._build(spec, recipe, dependencies, extra, bool(plan.install), on_output)
            recipe.write_text(templates.source_containerfile(dependencies, plan))
            # The source just changed (else why build): checking its steps against the
            # cache costs more than it saves.
            await self._build(
                spec, recipe, name, [*labels, *extra], bool(plan.build), on_output, layers=False
            )
        finally:
            recipe.unlink(missing_ok=True)
            ignore.unlink(missing_ok=True)

    async def _build(
        self,
        spec: BuildSpec,
        recipe: Path,
        name: str,
        extra: list[str],
        runs: bool,
        on_output: OutputCallback,
        *,
        layers: bool = True,
    ) -> None:
        """One `buildah build` of `recipe` as `name`; `runs`: it has RUN steps (which get
        the build network; a recipe without any gets none, and no network is made);
        `layers`: cache each step as an image (else only the result is committed)."""
        argv = [
            *self.command,
            "build",
            *self._sandbox_args(),
            f"--layers={str(layers).lower()}",
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
        async with self._network(runs) as network:
            argv += [*network, str(spec.context_dir)]
            await run_streaming(argv, on_output, what=f"buildah build of {spec.version}")

    async def remove_image(self, ref: str) -> bool:
        status, _ = await run_quiet([*self.command, "rmi", ref])
        return status == 0


def buildah_factory(deps: Any) -> BuildahBuilder:
    """Entry point: `Dependencies` holding a BuilderOptions, or the options themselves."""
    return BuildahBuilder(options_from(deps))
