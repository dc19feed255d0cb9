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
    app: str
    version: str
    service: str
    command: str
    cwd: Path
    """Where the command runs: the version's unpacked source."""
    env: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None
    log_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class SandboxHandle:
    """What the records keep to find the sandbox again from any process on this host."""

    pid: int
    process_start: str
    """The kernel's start time of `pid` (clock ticks since boot): a reused pid won't match."""
    log_path: str | None = None


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
    """Where the runtime keeps logs."""
    grace: float = DEFAULT_GRACE


def runtime_options_from(source: Any) -> RuntimeOptions:
    """The RuntimeOptions a factory was given, directly or inside `Dependencies`."""
    if isinstance(source, RuntimeOptions):
        return source
    options: RuntimeOptions = source.get(RuntimeOptions)
    return options
