"""Starting and stopping an app's sandboxes through the runtime plugin, recorded in the store."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
from sagactl.engine import Dependencies, InputError, Transaction
from sagactl.plugins.runtimes.base import SandboxHandle, SandboxRuntime, SandboxSpec

from . import appconfig, backends, records
from .settings import settings_of


def runtime_of(deps: Dependencies) -> SandboxRuntime:
    return backends.runtime(deps)


async def stop_sandbox(
    runtime: SandboxRuntime, sandbox: records.SandboxRecord, deps: Dependencies
) -> bool:
    """Stops one recorded sandbox; False when it had already exited."""
    if sandbox.pid is None or sandbox.process_start is None:
        return False
    handle = SandboxHandle(sandbox.pid, sandbox.process_start, sandbox.log_path)
    return await runtime.stop(handle, settings_of(deps).stop_grace)


async def start_sandboxes(
    tx: Transaction, deps: Dependencies, app: str, service: str | None = None
) -> list[records.SandboxRecord]:
    """Starts the active version's service (every service when None) and records each one.

    A service already running on the active version is not started twice.
    """
    shown = await records.show_app(tx, app)
    active = shown["active_version"]
    if active is None:
        raise InputError(f"app {app!r} has no active version")
    version = await records.get_version(tx, active)
    assert version is not None
    services: dict[str, dict[str, object]] = version["services"]
    if service is not None and service not in services:
        known = ", ".join(services) or "none"
        raise InputError(f"version {active} has no service {service!r} (it has: {known})")
    if not version["source_dir"] or not await anyio.Path(version["source_dir"]).is_dir():
        raise InputError(f"version {active} has no unpacked source to run from")
    running = {
        sandbox.service
        for sandbox in await records.running_sandboxes(tx, app)
        if sandbox.version == active
    }
    runtime = runtime_of(deps)
    source = Path(version["source_dir"])
    env = (await anyio.to_thread.run_sync(appconfig.load, source))["env"]
    started: list[records.SandboxRecord] = []
    for name, body in services.items():
        if (service is not None and name != service) or name in running:
            continue
        sandbox_id = f"{active}-{name}-{uuid.uuid4().hex[:8]}"
        command = str(body["command"])
        port = body.get("port")
        handle = await runtime.start(
            SandboxSpec(
                sandbox_id=sandbox_id,
                app=app,
                version=active,
                service=name,
                command=command,
                cwd=source,
                env=env,
                port=int(port) if isinstance(port, int) else None,
            )
        )
        record = records.SandboxRecord(
            id=sandbox_id,
            app=app,
            version=active,
            service=name,
            runtime=getattr(runtime, "name", "local"),
            state="running",
            pid=handle.pid,
            process_start=handle.process_start,
            command=command,
            log_path=handle.log_path,
            created=records.now(),
            stopped=None,
        )
        await records.add_sandbox(tx, record)
        started.append(record)
    return started
