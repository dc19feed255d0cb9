"""The `runc` runtime: each sandbox is an OCI container run from the version's built image.

An image's layers are unpacked once and shared, and its root is a read-only overlay mount
of them (images.py); each sandbox gets its own bundle with a config.json (ocispec.py),
written under the image cache's lock, run detached with `runc run -d` under this runtime's own runc
state directory, its output appended to a per-sandbox log. runc's state is the truth after
a crash: a handle names the container id, its init pid and that pid's kernel start time,
so a container that reuses an id (or a pid) is never taken for the recorded one. Stopping
sends SIGTERM, waits the grace period, then SIGKILL, and deletes the container; then the
roots no remaining bundle uses (and the layers only they used) are pruned.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .base import DEFAULT_GRACE, RuntimeOptions, SandboxHandle, SandboxSpec, runtime_options_from
from .env import check_app_env
from .images import ImageCache
from .layers import overlay_supported
from .local import process_start
from .ocispec import sandbox_config
from .ports import lease_port, release_port

POLL = 0.05
LOG_TAIL = 20


class ContainerFailed(RuntimeError):
    """runc could not start the container."""


def runc_usable() -> str | None:
    """None when runc can run containers here, else why not."""
    if shutil.which("runc") is None:
        return "runc is not installed"
    if not overlay_supported():
        return "the kernel has no overlayfs (image roots are overlay mounts)"
    if os.geteuid() != 0:
        return "runc needs root here (no rootless setup)"
    return None


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-LOG_TAIL:])


class RuncRuntime:
    name = "runc"

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self.root = options.state_dir / "runc"
        self.bundles = options.state_dir / "bundles"
        self.images = options.state_dir / "images"
        self.cache = ImageCache(self.images, options.buildah_command)
        self.leases = options.state_dir / "ports"

    def _runc(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.root), *args]

    async def state(self, container_id: str) -> dict[str, Any] | None:
        """runc's state of the container (`status`, `pid`...), or None when it has none."""
        done = await anyio.run_process(self._runc("state", container_id), check=False)
        if done.returncode != 0:
            return None
        state: dict[str, Any] = json.loads(done.stdout)
        return state

    async def list_ids(self) -> list[str]:
        """Every container id in this runtime's runc state."""
        done = await anyio.run_process(self._runc("list", "--format", "json"), check=False)
        if done.returncode != 0 or not done.stdout.strip():
            return []
        return [str(item["id"]) for item in json.loads(done.stdout) or []]

    async def start(self, spec: SandboxSpec) -> SandboxHandle:
        if not spec.image or not spec.digest:
            raise ContainerFailed(f"sandbox {spec.sandbox_id}: no image to run")
        check_app_env(spec.env)
        self.cache.check(spec.image, spec.digest)
        await self._remove_leftover(spec.sandbox_id)
        port = lease_port(self.leases, spec.sandbox_id) if spec.port is not None else None
        bundle = self.bundles / spec.sandbox_id
        try:
            await anyio.to_thread.run_sync(self._make_bundle, spec, port, bundle)
        except BaseException:
            release_port(self.leases, port, spec.sandbox_id)
            raise
        log_dir = spec.log_dir or self.options.state_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{spec.sandbox_id}.log"
        self.root.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            done = await anyio.run_process(
                self._runc("run", "--detach", "--bundle", str(bundle), spec.sandbox_id),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                check=False,
            )
        state = await self.state(spec.sandbox_id)
        pid = int(state["pid"]) if state and state.get("status") == "running" else 0
        started = process_start(pid) if pid else None
        if done.returncode != 0 or started is None:
            await self._remove_leftover(spec.sandbox_id)
            release_port(self.leases, port, spec.sandbox_id)
            await anyio.to_thread.run_sync(self.prune_images)
            what = "exited at once" if done.returncode == 0 else "did not start"
            raise ContainerFailed(
                f"sandbox {spec.sandbox_id} {what} (runc exit {done.returncode}); "
                f"log {log_path}:\n{_tail(log_path)}"
            )
        return SandboxHandle(pid, started, str(log_path), spec.sandbox_id, port)

    def _make_bundle(self, spec: SandboxSpec, port: int | None, bundle: Path) -> None:
        """The sandbox's bundle, its root mounted; under the cache's lock so no prune
        unmounts that root before the bundle names it."""
        with self.cache.locked():
            image = self.cache.unpack(str(spec.image), str(spec.digest))
            bundle.mkdir(parents=True, exist_ok=True)
            config = sandbox_config(image.config, image.rootfs, spec, port)
            (bundle / "config.json").write_text(json.dumps(config, indent=1))

    def prune_images(self) -> list[str]:
        """Unmounts and removes the image roots no bundle names (and the layers only they
        used); returns the removed roots' digests."""
        with self.cache.locked():
            return self.cache.prune(self._roots_in_use())

    def _roots_in_use(self) -> list[Path]:
        used = []
        for config in self.bundles.glob("*/config.json"):
            try:
                used.append(Path(json.loads(config.read_text())["root"]["path"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return used

    async def _remove_leftover(self, container_id: str) -> None:
        """Kills and deletes what an earlier attempt of this start left under its id."""
        if await self.state(container_id) is not None:
            await anyio.run_process(self._runc("delete", "--force", container_id), check=False)
        shutil.rmtree(self.bundles / container_id, ignore_errors=True)

    def _is_ours(self, state: dict[str, Any] | None, handle: SandboxHandle) -> bool:
        """The recorded container, running: same init pid with the same kernel start time."""
        if state is None or state.get("status") not in ("running", "paused"):
            return False
        pid = int(state.get("pid") or 0)
        return pid == handle.pid and process_start(pid) == handle.process_start

    async def stop(self, handle: SandboxHandle, grace: float = DEFAULT_GRACE) -> bool:
        container = handle.sandbox_id
        state = await self.state(container)
        if (
            state is not None
            and state.get("status") == "running"
            and not self._is_ours(state, handle)
        ):
            return False  # a different container under a reused id: not ours to stop
        running = self._is_ours(state, handle)
        if running:
            await anyio.run_process(self._runc("kill", container, "TERM"), check=False)
            with anyio.move_on_after(grace):
                await self._wait_gone(handle)
            if self._is_ours(await self.state(container), handle):
                await anyio.run_process(self._runc("kill", container, "KILL"), check=False)
                await self._wait_gone(handle)
        if state is not None:
            await anyio.run_process(self._runc("delete", "--force", container), check=False)
        shutil.rmtree(self.bundles / container, ignore_errors=True)
        release_port(self.leases, handle.port, container)
        await anyio.to_thread.run_sync(self.prune_images)
        return running

    async def _wait_gone(self, handle: SandboxHandle) -> None:
        # runc offers no way to wait for another process's container: poll its state.
        while self._is_ours(await self.state(handle.sandbox_id), handle):  # noqa: ASYNC110
            await anyio.sleep(POLL)

    async def status(self, handle: SandboxHandle) -> str:
        state = await self.state(handle.sandbox_id)
        return "running" if self._is_ours(state, handle) else "exited"


def runc_factory(deps: Any) -> RuncRuntime:
    """Entry point: `Dependencies` holding a RuntimeOptions, or the options themselves."""
    return RuncRuntime(runtime_options_from(deps))
