"""Starting, health-checking and stopping an app's sandboxes through the runtime plugins.

Starting is split so no database transaction stays open while containers start: read
what to run (`plan`), start and check it (`launch`), then record it (`record`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from sagactl.engine import Dependencies, FatalError, InputError, Transaction
from sagactl.plugins.runtimes.base import SandboxHandle, SandboxRuntime, SandboxSpec
from sagactl.plugins.runtimes.env import UnsafeEnv

from . import appconfig, backends, records
from .health import Unhealthy, wait_healthy
from .settings import settings_of


def runtime_of(deps: Dependencies, name: str | None = None) -> SandboxRuntime:
    return backends.runtime(deps, name)


def handle_of(sandbox: records.SandboxRecord) -> SandboxHandle | None:
    if sandbox.pid is None or sandbox.process_start is None:
        return None
    return SandboxHandle(
        sandbox.pid, sandbox.process_start, sandbox.log_path, sandbox.id, sandbox.port
    )


async def stop_sandbox(sandbox: records.SandboxRecord, deps: Dependencies) -> bool:
    """Stops one recorded sandbox with the runtime that started it; False when it had
    already exited."""
    handle = handle_of(sandbox)
    if handle is None:
        return False
    runtime = runtime_of(deps, sandbox.runtime)
    return await runtime.stop(handle, settings_of(deps).stop_grace)


async def live_state(sandbox: records.SandboxRecord, deps: Dependencies) -> str:
    """The recorded state, except that a `running` sandbox that has exited says so."""
    handle = handle_of(sandbox)
    if sandbox.state != "running" or handle is None:
        return sandbox.state
    return await runtime_of(deps, sandbox.runtime).status(handle)


@dataclass(frozen=True, slots=True)
class Plan:
    app: str
    version: str
    image: str
    digest: str
    source_dir: str | None
    services: dict[str, dict[str, Any]]


async def plan(tx: Transaction, app: str, version: str, service: str | None = None) -> Plan:
    """What starting `version` (one `service`, or all) runs; InputError for what is not."""
    found = await records.get_version(tx, version)
    if found is None or found["app"] != app:
        raise InputError(f"app {app!r} has no version {version!r}")
    services: dict[str, dict[str, Any]] = found["services"]
    if service is not None:
        if service not in services:
            known = ", ".join(services) or "none"
            raise InputError(f"version {version} has no service {service!r} (it has: {known})")
        services = {service: services[service]}
    return Plan(app, version, found["image"], found["digest"], found["source_dir"], services)


def new_id(version: str, service: str) -> str:
    return f"{version}-{service}-{uuid.uuid4().hex[:8]}"


async def _app_env(source_dir: str | None) -> dict[str, str]:
    """The app's `[env]` (already screened when it was loaded for the build)."""
    if not source_dir or not await anyio.Path(source_dir).is_dir():
        return {}
    config = await anyio.to_thread.run_sync(appconfig.load, Path(source_dir))
    return dict(config["env"])


async def launch(
    deps: Dependencies,
    planned: Plan,
    sandbox_id: Callable[[str], str],
    *,
    health_timeout: float | None = None,
) -> list[records.SandboxRecord]:
    """Starts each planned service and waits until each is healthy. When one fails, those
    already started are stopped before the error (FatalError, or InputError for an unsafe
    `[env]`) is raised: nothing is left running."""
    settings = settings_of(deps)
    timeout = settings.health_timeout if health_timeout is None else health_timeout
    runtime = runtime_of(deps)
    env = await _app_env(planned.source_dir)
    cwd = Path(planned.source_dir or "/nonexistent")
    has_source = await anyio.Path(cwd).is_dir()
    started: list[records.SandboxRecord] = []
    try:
        for name, body in planned.services.items():
            what = f"{planned.version} {name}"
            if runtime.name == "local" and (body["command"] is None or not has_source):
                raise FatalError(
                    f"{what}: the local runtime runs a Procfile command from the unpacked "
                    "source; this version needs a container runtime (runc)"
                )
            spec = SandboxSpec(
                sandbox_id=sandbox_id(name),
                app=planned.app,
                version=planned.version,
                service=name,
                command=body["command"] or "",
                cwd=cwd,
                env=env,
                port=body.get("port"),
                image=planned.image,
                digest=planned.digest,
            )
            try:
                handle = await runtime.start(spec)
            except UnsafeEnv as exc:
                raise InputError(f"app.toml: {exc}") from None
            except (OSError, RuntimeError) as exc:
                raise FatalError(f"{what} did not start: {exc}") from None
            started.append(_record(planned, name, body, runtime.name, handle))
            try:
                await wait_healthy(
                    runtime, handle, what=what, path=body.get("health"), within=timeout
                )
            except Unhealthy as exc:
                raise FatalError(str(exc)) from None
    except BaseException:
        with anyio.CancelScope(shield=True):
            for record in started:
                await stop_sandbox(record, deps)
        raise
    return started


def _record(
    planned: Plan, service: str, body: dict[str, Any], runtime: str, handle: SandboxHandle
) -> records.SandboxRecord:
    return records.SandboxRecord(
        id=handle.sandbox_id,
        app=planned.app,
        version=planned.version,
        service=service,
        runtime=runtime,
        state="running",
        pid=handle.pid,
        process_start=handle.process_start,
        command=body["command"] or "(image command)",
        log_path=handle.log_path,
        created=records.now(),
        stopped=None,
        port=handle.port,
    )


async def record(tx: Transaction, started: list[records.SandboxRecord]) -> None:
    for sandbox in started:
        await records.add_sandbox(tx, sandbox)


async def stop_all(deps: Dependencies, sandboxes: list[records.SandboxRecord]) -> list[str]:
    """Stops each sandbox (concurrently: each may wait its grace period); their ids."""
    async with anyio.create_task_group() as group:
        for sandbox in sandboxes:
            group.start_soon(stop_sandbox, sandbox, deps)
    return [sandbox.id for sandbox in sandboxes]
