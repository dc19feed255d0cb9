"""The SandboxRuntime protocol: start, stop and watch one service of one app version."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sagactl.engine.plugin_registry import Group, factory_group

DEFAULT_GRACE = 10.0


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    sandbox_id: str
    """Unique per start; a runtime that finds a leftover under this id (an earlier attempt
    of the same start, cut short by a crash) replaces it."""
    app: str
    version: str
    service: str
    command: str
    cwd: Path
    """Where a host-process runtime runs the command: the version's unpacked source."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The app's `[env]`, already screened (see `env.check_app_env`)."""
    port: int | None = None
    """Declared port of a service that listens; the runtime allocates the real one."""
    log_dir: Path | None = None
    image: str | None = None
    """The built image (`oci:DIR:TAG` or a buildah name) for a container runtime."""
    digest: str | None = None
    """The image's manifest digest (`sha256:...`), the key of unpacked images."""


@dataclass(frozen=True, slots=True)
class SandboxHandle:
    """What the records keep to find the sandbox again from any process on this host."""

    pid: int
    process_start: str
    """The kernel's start time of `pid` (clock ticks since boot): a reused pid won't match."""
    log_path: str | None = None
    sandbox_id: str = ""
    port: int | None = None
    """The port allocated to it and passed as `$PORT`, if it listens."""


@runtime_checkable
class SandboxRuntime(Protocol):
    name: str

    async def start(self, spec: SandboxSpec) -> SandboxHandle: ...

    async def stop(self, handle: SandboxHandle, grace: float = DEFAULT_GRACE) -> bool:
        """Stop it (graceful first); True when it was running and is now stopped."""
        ...

    async def status(self, handle: SandboxHandle) -> str:
        """`running` or `exited`."""
        ...


RuntimeFactory = Callable[[Any], SandboxRuntime]
"""What a `sagactl.runtimes` entry point names: called with the plugin `Dependencies`
(holding a `RuntimeOptions`) or with a `RuntimeOptions` directly."""

RUNTIMES: Group[RuntimeFactory] = factory_group("sagactl.runtimes", "runtime")
"""The sandbox runtimes' entry-point group, declared to the plugin registry (`sagactl.groups`)."""


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    state_dir: Path
    """Where the runtime keeps logs, port leases, bundles and its container state."""
    grace: float = DEFAULT_GRACE
    allow_root: bool = False
    """local runtime: run app commands as root (an explicit operator opt-in)."""
    buildah_driver: str = "auto"
    """buildah's storage (as the builder's), to export images the buildah builder made."""
    buildah_root: Path | None = None
    buildah_runroot: Path | None = None

    def buildah_command(self) -> list[str]:
        """buildah with the builder's storage options (the driver resolved on first use)."""
        from sagactl.plugins.builders.baseimage import buildah_args

        return buildah_args("buildah", self.buildah_driver, self.buildah_root, self.buildah_runroot)


def runtime_options_from(source: Any) -> RuntimeOptions:
    """The RuntimeOptions a factory was given, directly or inside `Dependencies`."""
    if isinstance(source, RuntimeOptions):
        return source
    options: RuntimeOptions = source.get(RuntimeOptions)
    return options
