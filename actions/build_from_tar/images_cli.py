"""`sagactl images prepare|list`: the stack base images, made ahead of the first build."""

from __future__ import annotations

import json
import time

import anyio
import click
from sagactl.engine import InputError
from sagactl.plugins.builders import bases
from sagactl.plugins.builders.base import ImageBuildFailed
from sagactl.plugins.builders.buildah import BuildahBuilder

from .settings import BuildSettings


def _builder() -> BuildahBuilder:
    return BuildahBuilder(BuildSettings.from_env().builder_options())


def _stacks(names: tuple[str, ...]) -> list[str]:
    unknown = [name for name in names if name not in bases.STACKS]
    if unknown:
        raise InputError(
            f"no base is made here for {', '.join(unknown)} (stacks: {', '.join(bases.STACKS)})"
        )
    return list(names or bases.STACKS)


@click.group("images")
def images() -> None:
    """The stack base images builds use (made here from Debian packages)."""


@images.command("prepare")
@click.argument("stacks", nargs=-1, metavar="[STACK...]")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def prepare(stacks: tuple[str, ...], quiet: bool) -> None:
    """Make the base image of each STACK (default: all) unless it is already made."""
    chosen = _stacks(stacks)
    builder = _builder()

    def progress(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    async def run() -> None:
        await builder.prepare()
        for stack in chosen:
            started = time.monotonic()
            name = await bases.ensure(stack, builder.options, builder.command, progress)
            click.echo(f"{stack}\t{name}\t{time.monotonic() - started:.1f}s")

    try:
        anyio.run(run)
    except ImageBuildFailed as exc:
        raise click.ClickException(str(exc)) from None


@images.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_(as_json: bool) -> None:
    """Each stack's base: its image name, whether it is made, its recipe and packages."""
    builder = _builder()

    async def read() -> list[dict[str, object]]:
        found = []
        for stack in bases.STACKS:
            name = bases.image_name(stack, builder.options)
            made = await bases.exists(builder.command, name)
            labels = await bases.labels_of(builder.command, name) if made else {}
            found.append(
                {
                    "stack": stack,
                    "image": name,
                    "made": made,
                    "recipe": labels.get(bases.LABEL_RECIPE),
                    "packages": (labels.get(bases.LABEL_PACKAGES) or "").split(),
                }
            )
        return found

    shown = anyio.run(read)
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for row in shown:
        state = "made" if row["made"] else "not made"
        click.echo(f"{row['stack']}\t{row['image']}\t{state}")
