"""`sagactl build` and `sagactl app show|start`, registered in `sagactl.commands`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import click
from sagactl.engine import Dependencies, Event, EventKind, InputError, open_store
from sagactl.engine.cli.options import DB_OPTION
from sagactl.engine.faults import FaultPlan

from . import records
from .entry import build_from_tar_async
from .sandboxes import start_sandboxes


class _Progress:
    """Live progress on stderr: upload bytes, builder steps, each action's end."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last_bytes = 0

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        data = event.data
        kind = event.kind
        if kind is EventKind.ACTION_PROGRESS:
            received = data.get("bytes")
            message = data.get("message") or ""
            if event.action == "receive_tar" and received is not None:
                if received - self.last_bytes < 8 << 20 and data.get("fraction") != 1.0:
                    return
                self.last_bytes = received
                message = f"{message} ({received / (1 << 20):.1f} MiB)"
            if message:
                click.echo(f"[{event.action}] {message}", err=True)
        elif kind is EventKind.ACTION_SUCCEEDED:
            click.echo(f"[{event.action}] done", err=True)
        elif kind in (EventKind.ACTION_FAILED, EventKind.COMPENSATION_FAILED):
            click.echo(f"[{event.action}] failed: {data.get('error')}", err=True)
        elif kind is EventKind.ACTION_COMPENSATED:
            click.echo(f"[{event.action}] undone", err=True)


def _open_upload(tar: str) -> BinaryIO:
    if tar == "-":
        if sys.stdin.isatty():
            raise InputError(
                "no upload: give a TAR file, or pipe one in (tar c . | sagactl build APP -)"
            )
        return sys.stdin.buffer
    path = Path(tar)
    if not path.is_file():
        raise InputError(f"{tar}: no such file")
    return path.open("rb")


@click.command("build")
@click.argument("app")
@click.argument("tar", default="-", metavar="[TAR|-]")
@click.option("--builder", metavar="NAME", help="Image builder: buildah, buildkit or oci.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No live progress on stderr.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC",
    help="Inject a fault, ACTION:KIND[@WHEN] (as $SAGACTL_FAULTS) to rehearse recovery.",
)
@DB_OPTION
def build(
    app: str,
    tar: str,
    builder: str | None,
    as_json: bool,
    quiet: bool,
    faults: tuple[str, ...],
    db: str | None,
) -> None:
    """Build a tar of APP's source (a file, or `-` for stdin) into a new active version."""
    plan = FaultPlan.from_env(faults)
    upload = _open_upload(tar)
    try:
        result = anyio.run(
            lambda: build_from_tar_async(
                app,
                upload,
                builder=builder,
                db=db,
                faults=plan,
                on_progress=_Progress(quiet or as_json),
            )
        )
    finally:
        if upload is not sys.stdin.buffer:
            upload.close()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    elif result.active_version == result.version:
        click.echo(f"{result.version} is active: {result.image} {result.digest}")
    else:  # builds finished out of order: the newer version stays active
        click.echo(
            f"{result.version} is built but not active: {result.active_version}, a newer "
            f"build, stays active ({result.image} {result.digest})"
        )


@click.group("app")
def app() -> None:
    """Inspect and run built apps."""


@app.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the app as JSON.")
@click.option(
    "--paths", is_flag=True, help="Also show host paths (each version's staged source_dir)."
)
@DB_OPTION
def show(name: str, as_json: bool, paths: bool, db: str | None) -> None:
    """Show APP's active version, its versions (image, digest) and sandboxes."""

    async def read() -> dict[str, Any]:
        async with open_store(db) as store, store.transaction() as tx:
            return await records.show_app(tx, name, host_paths=paths)

    shown = anyio.run(read)
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
            click.echo(
                f"    sandbox {sandbox['id']} {sandbox['service']} {sandbox['state']} "
                f"pid {sandbox['pid']}"
            )


@app.command("start")
@click.argument("name")
@click.argument("service", required=False)
@DB_OPTION
def start(name: str, service: str | None, db: str | None) -> None:
    """Start the active version's SERVICE (default: every service) as sandboxes."""

    async def run() -> list[records.SandboxRecord]:
        async with open_store(db) as store, store.transaction() as tx:
            return await start_sandboxes(tx, Dependencies(), name, service)

    started = anyio.run(run)
    if not started:
        click.echo(f"{name}: already running", err=True)
    for sandbox in started:
        click.echo(f"{sandbox.id} {sandbox.service} pid {sandbox.pid} log {sandbox.log_path}")
