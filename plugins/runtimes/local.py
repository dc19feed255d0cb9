"""The `local` runtime: a service's command as a local process in its own session.

Each sandbox is `/bin/sh -c COMMAND` started in a new session (so the whole process group
can be signalled), with cwd at the version's unpacked source and output appended to a log
file. It outlives the process that started it; any process on the host finds it again by
pid and kernel start time, so a reused pid is never mistaken for it. Stopping sends
SIGTERM to the group, waits the grace period, then SIGKILLs it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio

from .base import (
    DEFAULT_GRACE,
    RuntimeOptions,
    SandboxHandle,
    SandboxSpec,
    runtime_options_from,
)

POLL = 0.05
_LAUNCH = 'setsid /bin/sh -c "$1" >>"$2" 2>&1 </dev/null & echo $!'


def process_start(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent has not reaped it yet
        return None
    return fields[19]


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _alive(handle: SandboxHandle) -> bool:
    return process_start(handle.pid) == handle.process_start


def _reap(pid: int) -> None:
    """Reap the process if it is our child (a test, or a worker that started it)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class LocalRuntime:
    name = "local"

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options

    async def start(self, spec: SandboxSpec) -> SandboxHandle:
        log_dir = spec.log_dir or self.options.state_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{spec.sandbox_id}.log"
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(spec.cwd),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            **spec.env,
            "SAGACTL_APP": spec.app,
            "SAGACTL_VERSION": spec.version,
            "SAGACTL_SERVICE": spec.service,
        }
        if spec.port is not None:
            env["PORT"] = str(spec.port)
        # The launcher shell starts the sandbox in the background and exits at once, so the
        # sandbox is reparented to init (no zombie for us to reap, it outlives us); `setsid`
        # makes it lead its own session and process group.
        launched = await anyio.run_process(
            ["/bin/sh", "-c", _LAUNCH, "sh", spec.command, str(log_path)],
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        try:
            pid = int(launched.stdout.strip())
        except ValueError:
            raise RuntimeError(
                f"sandbox {spec.sandbox_id} did not start: {launched.stderr.decode().strip()}"
            ) from None
        with anyio.move_on_after(5):
            # Polling is the only way to see another process call setsid().
            while _group_of(pid) not in (pid, None):  # noqa: ASYNC110
                await anyio.sleep(0.005)
        started = process_start(pid)
        if started is None:
            raise RuntimeError(f"sandbox {spec.sandbox_id} exited at once; see {log_path}")
        return SandboxHandle(pid, started, str(log_path))

    async def stop(self, handle: SandboxHandle, grace: float = DEFAULT_GRACE) -> bool:
        if not _alive(handle):
            _reap(handle.pid)
            return False
        self._signal(handle, signal.SIGTERM)
        with anyio.move_on_after(grace):
            while _alive(handle):
                _reap(handle.pid)
                await anyio.sleep(POLL)
        if _alive(handle):
            self._signal(handle, signal.SIGKILL)
            while _alive(handle):
                _reap(handle.pid)
                await anyio.sleep(POLL)
        _reap(handle.pid)
        return True

    @staticmethod
    def _signal(handle: SandboxHandle, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            # The sandbox leads its own session and group: signal all its processes.
            os.killpg(handle.pid, signum)

    async def status(self, handle: SandboxHandle) -> str:
        if _alive(handle):
            return "running"
        _reap(handle.pid)
        return "exited"


def local_factory(deps: Any) -> LocalRuntime:
    """Entry point: `Dependencies` holding a RuntimeOptions, or the options themselves."""
    return LocalRuntime(runtime_options_from(deps))
