"""The OCI runtime config (`config.json`) of one sandbox, from its unpacked image.

What a sandbox gets: its own PID, mount, IPC and UTS namespaces; the host's network (so a
service listens on 127.0.0.1:$PORT); the image's root filesystem, read-only and shared by
the version's sandboxes, with a private tmpfs at /tmp; working directory /app; the image's
environment, then the app's `[env]`, then what the runtime sets (PORT, SAGACTL_*).
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import SandboxSpec

APP_DIR = "/app"
NAMESPACES = ("pid", "mount", "ipc", "uts")
TMP_SIZE = 256 << 20
INIT = (
    "trap 'kill -TERM \"$child\" 2>/dev/null' TERM INT; "
    '/bin/sh -c "$1" & child=$!; wait "$child"; status=$?; '
    'wait "$child" 2>/dev/null && status=$?; exit "$status"'
)
"""PID 1 of the container: a process with no handler ignores SIGTERM there, so a shell
that traps it and passes it on stands in front of the service, and stop is graceful."""


def _env(items: list[str], *overrides: Mapping[str, str]) -> list[str]:
    env: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key != "TERM":
            env[key] = value
    for layer in overrides:
        env.update(layer)
    return [f"{key}={value}" for key, value in env.items()]


def _args(spec: SandboxSpec, rootfs: Path, image_args: list[str]) -> list[str]:
    """The service's command under the image's shell, as a Procfile expects ($PORT...)."""
    if not spec.command:
        return image_args
    if (rootfs / "bin" / "sh").exists() or (rootfs / "bin" / "sh").is_symlink():
        return ["/bin/sh", "-c", INIT, "sh", spec.command]
    return shlex.split(spec.command)


def sandbox_config(
    template: Mapping[str, Any], rootfs: Path, spec: SandboxSpec, port: int | None
) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(dict(template))
    process = config.setdefault("process", {})
    runtime_env = {
        "SAGACTL_APP": spec.app,
        "SAGACTL_VERSION": spec.version,
        "SAGACTL_SERVICE": spec.service,
    }
    if port is not None:
        runtime_env["PORT"] = str(port)
    process.update(
        terminal=False,
        args=_args(spec, rootfs, list(process.get("args") or [])),
        env=_env(list(process.get("env") or []), spec.env, runtime_env),
        cwd=APP_DIR,
    )
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["hostname"] = spec.sandbox_id[:63]
    linux = config.setdefault("linux", {})
    linux["namespaces"] = [{"type": kind} for kind in NAMESPACES]
    linux["cgroupsPath"] = f"/sagactl/{spec.sandbox_id}"
    mounts = [m for m in config.get("mounts") or [] if m.get("destination") != "/tmp"]
    mounts.append(
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", f"size={TMP_SIZE}"],
        }
    )
    config["mounts"] = mounts
    config["annotations"] = {
        **(config.get("annotations") or {}),
        "io.sagactl.app": spec.app,
        "io.sagactl.version": spec.version,
        "io.sagactl.service": spec.service,
    }
    return config
