"""The image builder and sandbox runtime a build uses, made from the installed plugins.

Looked up in the plugin registry under the groups the builders and runtimes packages declare
(`BUILDERS`, `RUNTIMES`); their factories get a container holding the BuilderOptions or
RuntimeOptions of the settings.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

from sagactl.engine import Dependencies, InputError
from sagactl.engine.plugin_registry import Registry
from sagactl.engine.plugins import load_plugins
from sagactl.plugins.builders.base import BUILDERS, Builder, BuilderOptions
from sagactl.plugins.runtimes.base import RUNTIMES, RuntimeOptions, SandboxRuntime
from sagactl.plugins.runtimes.runc import runc_usable

from .settings import BuildSettings, settings_of


def default_builder() -> str:
    """buildah when it is installed, else the embedded oci builder."""
    return "buildah" if shutil.which("buildah") else "oci"


def _known(registry: Registry[Any], name: str) -> None:
    """An unknown name is the user's mistake (exit 2); a broken plugin is not."""
    if name not in registry and registry.error_for(name) is None:
        installed = ", ".join(registry.names()) or "none"
        raise InputError(f"no {registry.kind} named {name!r} (installed: {installed})")


def check_builder(name: str) -> None:
    """InputError unless a builder `name` is installed: checked before a build starts."""
    _known(load_plugins().registry(BUILDERS), name)


def builder(name: str, settings: BuildSettings) -> Builder:
    registry = load_plugins().registry(BUILDERS)
    _known(registry, name)
    deps = Dependencies()
    deps.provide(BuilderOptions, settings.builder_options())
    return registry.create(name, deps)


_warned: set[str] = set()


def default_runtime() -> str:
    """runc where it can run containers, else the local process runtime, said on stderr."""
    reason = runc_usable()
    if reason is None:
        return "runc"
    if reason not in _warned:
        _warned.add(reason)
        print(
            f"sagactl: warning: {reason}: sandboxes run as host processes (local runtime), "
            "without container isolation",
            file=sys.stderr,
        )
    return "local"


def runtime(deps: Dependencies, name: str | None = None) -> SandboxRuntime:
    """The runtime called `name` (one that started a recorded sandbox), else the one the
    settings name; an instance the dependencies provide wins."""
    provided = deps.maybe(SandboxRuntime)  # type: ignore[type-abstract]
    if provided is not None:
        return provided
    settings = settings_of(deps)
    name = name or settings.runtime or default_runtime()
    registry = load_plugins().registry(RUNTIMES)
    _known(registry, name)
    options = Dependencies()
    options.provide(RuntimeOptions, settings.runtime_options())
    return registry.create(name, options)
