"""`sagactl app show|start|stop|logs|rollback`: inspect and run built apps."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import click
from sagactl.engine import Dependencies, InputError, open_store
from sagactl.engine.cli.options import DB_OPTION

from . import records
from .cli import _Progress
from .rollback import rollback_async
from .sandboxes import launch, live_state, new_id, plan, record, stop_all

FOLLOW_POLL = 0.2


@click.group("app")
def app() -> None:
    """Inspect and run built apps."""


async def _shown(name: str, db: str | None, paths: bool = False) -> dict[str, Any]:
    """`records.show_app`, each running sandbox's state checked with its runtime."""
    async with open_store(db) as store, store.transaction() as tx:
        shown = await records.show_app(tx, name, host_paths=paths)
        running = {s.id: s for s in await records.running_sandboxes(tx, name)}
    deps = Dependencies()
    for version in shown["versions"]:
        for sandbox in version["sandboxes"]:
            if sandbox["id"] in running:
                sandbox["state"] = await live_state(running[sandbox["id"]], deps)
    return shown


@app.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the app as JSON.")
@click.option(
    "--paths", is_flag=True, help="Also show host paths (each version's staged source_dir)."
)
@DB_OPTION
def show(name: str, as_json: bool, paths: bool, db: str | None) -> None:
    """Show APP's active version, its versions (image, digest) and sandboxes."""
    shown = anyio.run(_shown, name, db, paths)
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    click.echo(f"app {shown['name']}: active version {shown['active_version'] or '(none)'}")
    for version in shown["versions"]:
        marker = "*" if version["version"] == shown["active_version"] else " "
        click.echo(f"{marker} {version['version']}  {version['image']}  {version['digest']}")
        click.echo(f"    created {version['created']}")
        if paths:
            click.echo(f"    source {version['source_dir']}")
        for sandbox in version["sandboxes"]:
            where = sandbox["url"] or "no port"
            click.echo(
                f"    sandbox {sandbox['id']} {sandbox['service']} {sandbox['state']} "
                f"{sandbox['runtime']} {where} log {sandbox['log']}"
            )


@app.command("start")
@click.argument("name")
@click.argument("service", required=False)
@DB_OPTION
def start(name: str, service: str | None, db: str | None) -> None:
    """Start the active version's SERVICE (default: every service) and check its health."""

    async def run() -> list[records.SandboxRecord]:
        async with open_store(db) as store, store.transaction() as tx:
            shown = await records.show_app(tx, name)
            active = shown["active_version"]
            if active is None:
                raise InputError(f"app {name!r} has no active version")
            planned = await plan(tx, name, active, service)
            running = {
                s.service for s in await records.running_sandboxes(tx, name) if s.version == active
            }
        planned = replace(
            planned, services={k: v for k, v in planned.services.items() if k not in running}
        )
        deps = Dependencies()
        started = await launch(deps, planned, lambda svc: new_id(active, svc))
        try:
            async with open_store(db) as store, store.transaction() as tx:
                await record(tx, started)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stop_all(deps, started)
            raise
        return started

    started = anyio.run(run)
    if not started:
        click.echo(f"{name}: already running", err=True)
    for sandbox in started:
        click.echo(
            f"{sandbox.id} {sandbox.service} {sandbox.url or 'no port'} log {sandbox.log_path}"
        )


@app.command("stop")
@click.argument("name")
@click.argument("service", required=False)
@DB_OPTION
def stop(name: str, service: str | None, db: str | None) -> None:
    """Stop APP's running sandboxes (only SERVICE's when given): SIGTERM, grace, SIGKILL."""

    async def run() -> list[str]:
        async with open_store(db) as store, store.transaction() as tx:
            await records.show_app(tx, name)  # an unknown app is an error
            running = [
                s
                for s in await records.running_sandboxes(tx, name)
                if service is None or s.service == service
            ]
        stopped = await stop_all(Dependencies(), running)
        async with open_store(db) as store, store.transaction() as tx:
            for sandbox_id in stopped:
                await records.mark_sandbox(tx, sandbox_id, "stopped")
        return stopped

    stopped = anyio.run(run)
    if not stopped:
        click.echo(f"{name}: nothing running", err=True)
    for sandbox_id in stopped:
        click.echo(f"stopped {sandbox_id}")


def _log_paths(shown: dict[str, Any]) -> list[tuple[str, Path]]:
    """(label, log) of the active version's newest sandbox per service."""
    active = shown["active_version"]
    newest: dict[str, dict[str, Any]] = {}
    for version in shown["versions"]:
        if version["version"] != active:
            continue
        for sandbox in version["sandboxes"]:
            if sandbox["log"]:
                newest[sandbox["service"]] = sandbox  # listed oldest first
    return [(f"{s['version']} {service}", Path(s["log"])) for service, s in newest.items()]


@app.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output (Ctrl-C ends).")
@DB_OPTION
def logs(name: str, follow: bool, db: str | None) -> None:
    """Print the output of APP's active version's sandboxes, one service after another."""
    shown = anyio.run(_shown, name, db)
    paths = _log_paths(shown)
    if not paths:
        raise InputError(f"app {name!r} has no sandbox logs for its active version")
    offsets: dict[Path, int] = {}
    prefix = len(paths) > 1
    try:
        while True:
            for label, path in paths:
                offsets[path] = _print_new(label if prefix else None, path, offsets.get(path, 0))
            if not follow:
                return
            time.sleep(FOLLOW_POLL)
    except KeyboardInterrupt:
        return


def _print_new(label: str | None, path: Path, offset: int) -> int:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return offset
    if data:
        text = data.decode(errors="replace")
        if label:
            text = "".join(f"[{label}] {line}" for line in text.splitlines(keepends=True))
        sys.stdout.write(text)
        sys.stdout.flush()
    return offset + len(data)


@app.command("rollback")
@click.argument("name")
@click.argument("version", required=False)
@click.option("--quiet", "-q", is_flag=True, help="No live progress on stderr.")
@DB_OPTION
def rollback(name: str, version: str | None, quiet: bool, db: str | None) -> None:
    """Make VERSION of APP active again (default: the one before the active version):
    start it, check its health, activate it, stop the others (the `rollback` saga)."""
    if version is not None and records.VERSION_NAME.match(version) is None:
        raise InputError(f"{version!r} is not a version name (APP-vN)")
    active = anyio.run(lambda: rollback_async(name, version, db=db, on_progress=_Progress(quiet)))
    click.echo(f"{active} is active")
