"""The OCI runtime config (`config.json`) of one sandbox, from its image.

What a sandbox gets: its own PID, mount, IPC and UTS namespaces; the host's network (so a
service listens on 127.0.0.1:$PORT); the image's root filesystem, read-only and shared by
the version's sandboxes, with a private tmpfs at /tmp; working directory /app; the image's
environment, then the app's `[env]`, then what the runtime sets (PORT, SAGACTL_*). The
service runs as an unprivileged user: the image's own `USER` when it names one that is not
root, else nobody (65534), with no capabilities at all and no-new-privileges, so it cannot
gain any; HOME is /tmp unless the image sets it (tools such as npm write there).
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagactl.plugins.builders import safefs

from .base import SandboxSpec

APP_DIR = "/app"
NAMESPACES = ("pid", "mount", "ipc", "uts")
TMP_SIZE = 256 << 20
NOBODY = 65534
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT = (
    "trap 'kill -TERM \"$child\" 2>/dev/null' TERM INT; "
    '/bin/sh -c "$1" & child=$!; wait "$child"; status=$?; '
    'wait "$child" 2>/dev/null && status=$?; '
    'while :; do left=; for p in /proc/[0-9]*; do [ "$p" = /proc/1 ] || left=1; done; '
    '[ -z "$left" ] && break; sleep 0.1; done; exit "$status"'
)
"""PID 1 of the container: a process with no handler ignores SIGTERM there, so a shell
that traps it and passes it on stands in front of the service, and stop is graceful. When
the service has exited, PID 1 waits for what it left running (a forked handler still
answering a request) before exiting, since the kernel kills a PID namespace's processes
with its init: requests in flight when the stop came are drained, within the grace period
(then the runtime's SIGKILL ends it all)."""

_NOSUID = ["nosuid", "noexec", "nodev"]
BASE: Mapping[str, Any] = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "capabilities": {},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": [*_NOSUID, "mode=1777", "size=65536k"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": _NOSUID},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*_NOSUID, "ro"]},
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", f"size={TMP_SIZE}"],
        },
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "maskedPaths": [
            "/proc/acpi",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
        ],
        "readonlyPaths": [
            "/proc/asound",
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ],
    },
}
"""runc's own default spec (`runc spec`), less its capabilities and network namespace."""


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


def _lookup(rootfs: Path, table: str, name: str) -> int | None:
    """The id of `name` in the image's /etc/passwd or /etc/group (read without following a
    link out of the image), None when it has none."""
    try:
        text = safefs.read_beneath(rootfs, f"etc/{table}", 1 << 20).decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def user_of(image_user: str, rootfs: Path) -> dict[str, int]:
    """The uid and gid a sandbox runs as: the image's USER unless it is root or unknown,
    else nobody."""
    name, _, group = (image_user or "").partition(":")
    uid = int(name) if name.isdigit() else _lookup(rootfs, "passwd", name) if name else None
    if not uid:  # none, root, or a name the image does not know
        return {"uid": NOBODY, "gid": NOBODY}
    gid = int(group) if group.isdigit() else _lookup(rootfs, "group", group) if group else None
    return {"uid": uid, "gid": gid if gid else uid}


def sandbox_config(
    image: Mapping[str, Any], rootfs: Path, spec: SandboxSpec, port: int | None
) -> dict[str, Any]:
    """The config.json of `spec`'s sandbox; `image` is the image config's `config`."""
    config: dict[str, Any] = copy.deepcopy(dict(BASE))
    runtime_env = {
        "SAGACTL_APP": spec.app,
        "SAGACTL_VERSION": spec.version,
        "SAGACTL_SERVICE": spec.service,
    }
    if port is not None:
        runtime_env["PORT"] = str(port)
    image_args = [*(image.get("Entrypoint") or []), *(image.get("Cmd") or [])]
    config["process"].update(
        user=user_of(str(image.get("User") or ""), rootfs),
        args=_args(spec, rootfs, [str(arg) for arg in image_args]),
        env=_env(
            [f"PATH={DEFAULT_PATH}", "HOME=/tmp", *(image.get("Env") or [])],
            spec.env,
            runtime_env,
        ),
        cwd=APP_DIR,
    )
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["hostname"] = spec.sandbox_id[:63]
    linux = config["linux"]
    linux["namespaces"] = [{"type": kind} for kind in NAMESPACES]
    linux["cgroupsPath"] = f"/sagactl/{spec.sandbox_id}"
    config["annotations"] = {
        "io.sagactl.app": spec.app,
        "io.sagactl.version": spec.version,
        "io.sagactl.service": spec.service,
    }
    return config
