"""BuildSettings: where the build saga keeps its files and how it builds, from the environment.

Provide one through `Dependencies` (`deps.provide(BuildSettings, ...)`); without one the
actions read the environment:

| variable | meaning | default |
|---|---|---|
| SAGACTL_BUILD_DIR | staging, sources, images, logs | `<user state dir>/sagactl/build` |
| SAGACTL_BUILDER | image builder | buildah when installed, else oci |
| SAGACTL_BUILDKIT_ADDR | buildkitd address for the buildkit builder | none |
| SAGACTL_BASE_IMAGE_<STACK> | base image of a stack (e.g. `..._PYTHON`) | made here (bases.py) |
| SAGACTL_ALLOWED_BASE_IMAGES | further bases an app.toml may name (space separated) | none |
| SAGACTL_BUILD_NETWORK | RUN steps' network: `outbound` (never the host) or `none` | outbound |
| SAGACTL_CA_BUNDLE | CA bundle mounted read-only into RUN steps (`none`: none) | the host's |
| SAGACTL_BUILDAH_DRIVER, _ROOT, _RUNROOT | buildah storage | auto (overlay if it works) |
| SAGACTL_CLUSTER_HOST | cluster host name | cluster.local |
| SAGACTL_CLUSTER_STRICT | `1`: fail instead of falling back to 127.0.0.1 | 0 |
| SAGACTL_MAX_UPLOAD_BYTES, SAGACTL_MAX_MEMBERS | staging caps | 2 GiB, 100,000 |
| SAGACTL_STOP_GRACE | seconds between SIGTERM and SIGKILL | 10 |
| SAGACTL_RUNTIME | sandbox runtime (`runc`, `local`) | runc where it can run, else local |
| SAGACTL_LOCAL_AS_ROOT | `1`: let the local runtime run app commands as root | 0 |
| SAGACTL_HEALTH_TIMEOUT | seconds a new sandbox has to become healthy | 30 |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs
from sagactl.engine import Dependencies
from sagactl.engine.settings import (
    Setting,
    choice,
    declare,
    directory,
    duration_expected,
    flag,
    integer,
    seconds,
    text,
)
from sagactl.plugins.builders.base import DEFAULT_BASE_IMAGES, DEFAULT_CA_BUNDLE, BuilderOptions
from sagactl.plugins.runtimes.base import RuntimeOptions

from .cluster import ClusterSettings
from .schemas import STACKS
from .streams import StreamRegistry
from .tarcheck import StagingLimits

# Every variable above that is parsed is declared here, so the CLI checks it at start-up.
BUILD_DIR = Setting(
    "SAGACTL_BUILD_DIR",
    directory,
    Path(platformdirs.user_state_dir("sagactl")) / "build",
    "a directory that exists or can be created",
)
MAX_UPLOAD_BYTES = Setting(
    "SAGACTL_MAX_UPLOAD_BYTES",
    integer(1, 2**62),
    StagingLimits().max_upload_bytes,
    "a number of bytes from 1 to 2**62",
)
MAX_MEMBERS = Setting(
    "SAGACTL_MAX_MEMBERS",
    integer(1, 10_000_000),
    StagingLimits().max_members,
    "a count from 1 to 10,000,000",
)
STOP_GRACE_MAX = 3600.0
STOP_GRACE = Setting(
    "SAGACTL_STOP_GRACE",
    seconds(0.0, STOP_GRACE_MAX),
    10.0,
    duration_expected(0.0, STOP_GRACE_MAX),
)
CLUSTER_STRICT = Setting("SAGACTL_CLUSTER_STRICT", flag, False, "1/0, true/false or yes/no")
_PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")


def _plugin_name(value: str) -> str | None:
    if not _PLUGIN_NAME.match(value):
        raise ValueError("")
    return value


RUNTIME: Setting[str | None] = Setting(
    "SAGACTL_RUNTIME", _plugin_name, None, "a runtime's name, such as runc or local"
)
LOCAL_AS_ROOT = Setting("SAGACTL_LOCAL_AS_ROOT", flag, False, "1/0, true/false or yes/no")
HEALTH_TIMEOUT_MAX = 3600.0
HEALTH_TIMEOUT = Setting(
    "SAGACTL_HEALTH_TIMEOUT",
    seconds(0.1, HEALTH_TIMEOUT_MAX),
    30.0,
    duration_expected(0.1, HEALTH_TIMEOUT_MAX),
)


BUILD_NETWORK = Setting(
    "SAGACTL_BUILD_NETWORK", choice(("outbound", "none")), "outbound", "outbound or none"
)


def _bundle(value: str) -> Path | None:
    return None if value.lower() == "none" else Path(text(value))


def _names(value: str) -> frozenset[str]:
    return frozenset(text(value).split())


CA_BUNDLE: Setting[Path | None] = Setting(
    "SAGACTL_CA_BUNDLE", _bundle, DEFAULT_CA_BUNDLE, "a CA bundle file, or none"
)
ALLOWED_BASE_IMAGES = Setting(
    "SAGACTL_ALLOWED_BASE_IMAGES", _names, frozenset[str](), "image references, space separated"
)
declare(BUILD_NETWORK)
declare(CA_BUNDLE)
declare(ALLOWED_BASE_IMAGES)
declare(BUILD_DIR)
declare(MAX_UPLOAD_BYTES, MAX_MEMBERS)
declare(STOP_GRACE)
declare(CLUSTER_STRICT)
declare(RUNTIME)
declare(LOCAL_AS_ROOT)
declare(HEALTH_TIMEOUT)


@dataclass(frozen=True, slots=True)
class BuildSettings:
    state_dir: Path
    limits: StagingLimits = field(default_factory=StagingLimits)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    builder: str | None = None
    """Default image builder; None: buildah when installed, else oci."""
    base_images: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_BASE_IMAGES))
    allowed_base_images: frozenset[str] = frozenset()
    build_network: str = "outbound"
    ca_bundle: Path | None = DEFAULT_CA_BUNDLE
    buildkit_addr: str | None = None
    buildah_driver: str = "auto"
    """`auto`: overlay where it works here, else vfs (plugins/builders/storage.py)."""
    buildah_root: Path | None = None
    buildah_runroot: Path | None = None
    runtime: str | None = None
    """Sandbox runtime; None: runc where it can run, else local (with a warning)."""
    local_as_root: bool = False
    health_timeout: float = 30.0
    stop_grace: float = 10.0
    staged_ttl: float = 24 * 3600.0
    """Staged uploads older than this are swept (runs that ended in another process)."""

    @property
    def staging_dir(self) -> Path:
        return self.state_dir / "staging"

    @property
    def sources_dir(self) -> Path:
        return self.state_dir / "sources"

    def builder_options(self) -> BuilderOptions:
        return BuilderOptions(
            work_dir=self.state_dir / "images",
            base_images=dict(self.base_images),
            allowed_base_images=self.allowed_base_images,
            network=self.build_network,
            ca_bundle=self.ca_bundle,
            storage_driver=self.buildah_driver,
            storage_root=self.buildah_root,
            run_root=self.buildah_runroot,
            buildkit_addr=self.buildkit_addr,
        )

    def runtime_options(self) -> RuntimeOptions:
        return RuntimeOptions(
            state_dir=self.state_dir / "sandboxes",
            grace=self.stop_grace,
            allow_root=self.local_as_root,
            buildah_driver=self.buildah_driver,
            buildah_root=self.buildah_root,
            buildah_runroot=self.buildah_runroot,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BuildSettings:
        env = os.environ if environ is None else environ
        state_dir = BUILD_DIR.read(env)
        base_images = dict(DEFAULT_BASE_IMAGES)
        for stack in STACKS:
            value = env.get(f"SAGACTL_BASE_IMAGE_{stack.upper()}")
            if value:
                base_images[stack] = value
        limits = StagingLimits()
        if env.get(MAX_UPLOAD_BYTES.name, "").strip():
            size = MAX_UPLOAD_BYTES.read(env)
            limits = replace(limits, max_upload_bytes=size, max_total_bytes=size)
        limits = replace(limits, max_members=MAX_MEMBERS.read(env))
        root = env.get("SAGACTL_BUILDAH_ROOT")
        runroot = env.get("SAGACTL_BUILDAH_RUNROOT")
        return cls(
            state_dir=state_dir,
            limits=limits,
            cluster=ClusterSettings(
                host=env.get("SAGACTL_CLUSTER_HOST") or "cluster.local",
                strict=CLUSTER_STRICT.read(env),
            ),
            builder=env.get("SAGACTL_BUILDER") or None,
            base_images=base_images,
            allowed_base_images=ALLOWED_BASE_IMAGES.read(env),
            build_network=BUILD_NETWORK.read(env),
            ca_bundle=CA_BUNDLE.read(env),
            buildkit_addr=env.get("SAGACTL_BUILDKIT_ADDR") or None,
            buildah_driver=env.get("SAGACTL_BUILDAH_DRIVER") or "auto",
            buildah_root=Path(root) if root else None,
            buildah_runroot=Path(runroot) if runroot else None,
            stop_grace=STOP_GRACE.read(env),
            runtime=RUNTIME.read(env),
            local_as_root=LOCAL_AS_ROOT.read(env),
            health_timeout=HEALTH_TIMEOUT.read(env),
        )


_DEFAULT_REGISTRY = StreamRegistry()


def default_registry() -> StreamRegistry:
    """The process's StreamRegistry, used when the dependencies provide none."""
    return _DEFAULT_REGISTRY


def settings_of(deps: Dependencies) -> BuildSettings:
    found = deps.maybe(BuildSettings)
    if found is None:
        found = BuildSettings.from_env()
        deps.provide(BuildSettings, found)
    return found


def registry_of(deps: Dependencies) -> StreamRegistry:
    provided = deps.maybe(StreamRegistry)
    return _DEFAULT_REGISTRY if provided is None else provided
