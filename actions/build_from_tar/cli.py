"""`sagactl build`, registered in `sagactl.commands` (the `app` group is in appcli.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import BinaryIO

import anyio
import click
from sagactl.engine import Event, EventKind, InputError
from sagactl.engine.cli.options import DB_OPTION
from sagactl.engine.faults import FaultPlan

from .entry import build_from_tar_async
from .remote import build_remote, result_line


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
        elif kind is EventKind.RUN_QUEUED:  # another build of the app holds its key
            ahead = int(data["ahead"])
            builds = "build" if ahead == 1 else "builds"
            click.echo(f"[queued] waits for its turn: {ahead} {builds} of this app ahead", err=True)
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
@click.option(
    "--server",
    metavar="URL",
    help="Upload to a `sagactl serve` at URL and follow its run (instead of building here).",
)
@click.option("--token", envvar="SAGACTL_TOKEN", metavar="TOKEN", help="The server's bearer token.")
@DB_OPTION
def build(
    app: str,
    tar: str,
    builder: str | None,
    as_json: bool,
    quiet: bool,
    faults: tuple[str, ...],
    server: str | None,
    token: str | None,
    db: str | None,
) -> None:
    """Build a tar of APP's source (a file, or `-` for stdin) into a new active version."""
    plan = FaultPlan.from_env(faults)
    upload = _open_upload(tar)
    if server is not None:
        _build_on(server, app, upload, token=token, as_json=as_json, quiet=quiet)
        return
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


def _build_on(
    server: str, app: str, upload: BinaryIO, *, token: str | None, as_json: bool, quiet: bool
) -> None:
    try:
        run = build_remote(
            server, app, upload, token=token, on_progress=_Progress(quiet or as_json)
        )
    finally:
        if upload is not sys.stdin.buffer:
            upload.close()
    click.echo(json.dumps(run, indent=2) if as_json else result_line(run))
