"""The `local` runtime: a service's command as a host process in its own session.

The fallback where runc cannot run: no isolation beyond a session of its own, so it never
runs as root unless the operator opted in (`RuntimeOptions.allow_root`), and it refuses
loader variables and PATH/HOME from the app's `[env]`. Each sandbox is `/bin/sh -c
COMMAND` started with `setsid` (so the whole process group can be signalled), with cwd at
the version's unpacked source, a leased port as `$PORT`, and output appended to a log file.
It outlives the process that started it; any process on the host finds it again by pid and
kernel start time (a reused pid is never mistaken for it), and a start repeated under the
same sandbox id (after a crash) first stops what the earlier attempt left. Stopping sends
SIGTERM to the group, waits the grace period, then SIGKILLs it, and returns once no
process of the group runs.
"""

from __future__ import annotations

import contextlib
import json
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
from .env import check_app_env
from .ports import lease_port, release_port

POLL = 0.05
_LAUNCH = 'setsid /bin/sh -c "$1" >>"$2" 2>&1 </dev/null & echo $!'


class RootRefused(PermissionError):
    """The local runtime would run an uploaded command as root without an opt-in."""


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


def _group_running(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies do not count). The kernel
    gives no new process a pid still used as a group id, so the group is the sandbox's
    while any of it runs."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        # After the command name: state, ppid, pgrp.
        if fields[2] == str(pgid).encode() and fields[0] != b"Z":
            return True
    return False


def _reap(pid: int) -> None:
    """Reap the process if it is our child (a test, or a worker that started it)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class LocalRuntime:
    name = "local"

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self.leases = options.state_dir / "ports"
        self.handles = options.state_dir / "local"

    def _handle_file(self, sandbox_id: str) -> Path:
        return self.handles / f"{sandbox_id}.json"

    async def start(self, spec: SandboxSpec) -> SandboxHandle:
        if os.geteuid() == 0 and not self.options.allow_root:
            raise RootRefused(
                "the local runtime runs app commands on the host and refuses to do so as "
                "root: use the runc runtime, run sagactl as another user, or opt in with "
                "SAGACTL_LOCAL_AS_ROOT=1"
            )
        check_app_env(spec.env, host_process=True)
        await self._replace_leftover(spec.sandbox_id)
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
        port = lease_port(self.leases, spec.sandbox_id) if spec.port is not None else None
        if port is not None:
            env["PORT"] = str(port)
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
            release_port(self.leases, port, spec.sandbox_id)
            raise RuntimeError(
                f"sandbox {spec.sandbox_id} did not start: {launched.stderr.decode().strip()}"
            ) from None
        with anyio.move_on_after(5):
            # Polling is the only way to see another process call setsid().
            while _group_of(pid) not in (pid, None):  # noqa: ASYNC110
                await anyio.sleep(0.005)
        started = process_start(pid)
        if started is None:
            release_port(self.leases, port, spec.sandbox_id)
            raise RuntimeError(f"sandbox {spec.sandbox_id} exited at once; see {log_path}")
        handle = SandboxHandle(pid, started, str(log_path), spec.sandbox_id, port)
        self.handles.mkdir(parents=True, exist_ok=True)
        self._handle_file(spec.sandbox_id).write_text(json.dumps({"pid": pid, "start": started}))
        return handle

    async def _replace_leftover(self, sandbox_id: str) -> None:
        """Stops a process an earlier attempt of this start left running (crash recovery)."""
        try:
            known = json.loads(self._handle_file(sandbox_id).read_text())
        except (FileNotFoundError, ValueError):
            return
        leftover = SandboxHandle(int(known["pid"]), str(known["start"]), sandbox_id=sandbox_id)
        await self._stop_process(leftover, self.options.grace)

    async def stop(self, handle: SandboxHandle, grace: float = DEFAULT_GRACE) -> bool:
        stopped = await self._stop_process(handle, grace)
        if handle.sandbox_id:
            release_port(self.leases, handle.port, handle.sandbox_id)
            self._handle_file(handle.sandbox_id).unlink(missing_ok=True)
        return stopped

    async def _stop_process(self, handle: SandboxHandle, grace: float) -> bool:
        if not _alive(handle):
            _reap(handle.pid)
            return False

        # The whole group, not just its leader: a shell may die of SIGTERM while a child
        # that ignores it would keep the port.
        def running() -> bool:
            _reap(handle.pid)
            return _alive(handle) or _group_running(handle.pid)

        self._signal(handle, signal.SIGTERM)
        with anyio.move_on_after(grace):
            while running():  # noqa: ASYNC110 (other processes: polling is the event source)
                await anyio.sleep(POLL)
        if running():
            self._signal(handle, signal.SIGKILL)
            while running():  # noqa: ASYNC110 (other processes: polling is the event source)
                await anyio.sleep(POLL)
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
