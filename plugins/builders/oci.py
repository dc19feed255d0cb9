"""The embedded `oci` builder: writes an OCI image layout in-process (no daemon, no tools).

The image is the base's layers (an existing OCI layout, optional) plus one gzip layer with
the source under /app, and a config whose entrypoint is the web command. It runs no RUN
steps, so an app with its own Containerfile needs buildah or buildkit.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

import anyio.from_thread
import anyio.to_thread

from . import ocilayout, safefs
from .base import (
    BuilderOptions,
    BuildSpec,
    BuiltImage,
    ImageBuildFailed,
    OutputCallback,
    base_image_for,
    operator_base,
    options_from,
)

APP_DIR = "/app"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def local_base(ref: str | None) -> tuple[Path, str | None] | None:
    """An `oci:DIR[:TAG]` ref (or a layout directory) that exists here, else None."""
    if not ref:
        return None
    path, tag = ocilayout.parse_ref(ref)
    if ref.startswith("oci:") or (path / "index.json").is_file():
        return path, tag
    return None


class OciBuilder:
    """Writes `<work_dir>/oci/<version>/`, an OCI layout tagged with the version."""

    name = "oci"

    def __init__(self, options: BuilderOptions) -> None:
        self.options = options
        self.root = options.work_dir / "oci"

    async def prepare(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        return str(self.root)

    async def teardown(self) -> None:
        """Nothing runs between builds."""

    async def build(self, spec: BuildSpec, on_output: OutputCallback) -> BuiltImage:
        if spec.containerfile is not None:
            raise ImageBuildFailed(
                f"the oci builder runs no Containerfile ({spec.containerfile.name}): "
                "build this app with buildah or buildkit"
            )

        def from_thread(line: str) -> None:
            # Output callbacks belong to the event loop (they emit progress events).
            anyio.from_thread.run_sync(on_output, line)

        return await anyio.to_thread.run_sync(self._build, spec, from_thread)

    def _build(self, spec: BuildSpec, on_output: OutputCallback) -> BuiltImage:
        base_ref = base_image_for(spec, self.options)
        # Only an operator's base may be a local layout: base_image_for refuses host paths
        # and transports from the upload, so what is left here is theirs or a registry ref.
        base_at = local_base(base_ref) if operator_base(base_ref, self.options) else None
        base: ocilayout.Image | None = None
        if base_at is not None:
            try:
                base = ocilayout.read_image(*base_at)
            except ocilayout.LayoutError as exc:
                raise ImageBuildFailed(f"base image {base_ref}: {exc}") from None
            on_output(f"oci: base {base_ref} ({len(base.layers)} layers)")
        elif base_ref:
            on_output(f"oci: base {base_ref} is not a local OCI layout: source layer only")
        else:
            on_output(f"oci: no base image configured for {spec.stack}: source layer only")
        target = safefs.inside(self.root, self.root / spec.version)
        partial = safefs.inside(self.root, self.root / f".{spec.version}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            writer = ocilayout.LayoutWriter(partial)
            count = [0]

            def fill(tar: Any) -> None:
                count[0] = ocilayout.add_tree(tar, spec.context_dir, APP_DIR)

            layer, diff_id = writer.write_layer(fill)
            on_output(f"oci: source layer {layer.digest} ({count[0]} entries, {layer.size} bytes)")
            manifest = ocilayout.write_image(
                partial,
                tag=spec.tag,
                base=base,
                layers=[(layer, diff_id)],
                config=self._config(spec, base),
                history=[{"created_by": f"sagactl oci: COPY . {APP_DIR}"}],
            )
            shutil.rmtree(target, ignore_errors=True)
            partial.replace(target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        ref = f"oci:{target}:{spec.tag}"
        on_output(f"oci: wrote {ref} {manifest.digest}")
        return BuiltImage(ref, manifest.digest)

    def _config(self, spec: BuildSpec, base: ocilayout.Image | None) -> dict[str, Any]:
        inherited: dict[str, Any] = dict(base.config.get("config", {})) if base else {}
        env = {"PATH": DEFAULT_PATH}
        for item in inherited.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        if spec.port:
            env["PORT"] = str(spec.port)
        env.update(spec.env)
        config: dict[str, Any] = {
            **inherited,
            "Env": [f"{key}={value}" for key, value in env.items()],
            "WorkingDir": APP_DIR,
            "Labels": {**(inherited.get("Labels") or {}), **spec.labels},
        }
        if spec.command:
            # A shell from the base runs the command as Procfile semantics expect ($PORT...);
            # without a base there is no shell, so the command is split into argv.
            entry = ["/bin/sh", "-c", spec.command] if base else shlex.split(spec.command)
            config["Entrypoint"] = entry
            config.pop("Cmd", None)
        if spec.port:
            config["ExposedPorts"] = {
                **(inherited.get("ExposedPorts") or {}),
                f"{spec.port}/tcp": {},
            }
        return config

    async def remove_image(self, ref: str) -> bool:
        path, _ = ocilayout.parse_ref(ref)
        try:
            path = safefs.inside(self.root, path)
        except safefs.OutsideRoot:
            return False
        if path == self.root.resolve() or not path.is_dir() or path.is_symlink():
            return False
        await anyio.to_thread.run_sync(shutil.rmtree, path)
        return True


def oci_factory(deps: Any) -> OciBuilder:
    """Entry point: `Dependencies` holding a BuilderOptions, or the options themselves."""
    return OciBuilder(options_from(deps))
