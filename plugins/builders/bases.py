"""Stack base images made here from Debian packages: mmdebstrap -> rootfs tar -> buildah image.

Each base is named by its recipe's hash (`localhost/sagactl/base-STACK:HASH`), so it is made
once, reused by every build, and made again only when its recipe changes. Its labels record
the recipe hash and the Debian versions of the packages it was asked for. A lock file
serialises two builds that need the same missing base. The static stack's base is the
host's busybox-static (baseimage.py), which needs no download.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import anyio.to_thread

from . import baseimage
from .base import BuilderOptions, ImageBuildFailed, OutputCallback
from .process import run_quiet, run_streaming

FORMAT = 1
"""Bump when the way bases are made changes (it enters every recipe hash)."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LABEL_RECIPE = "org.sagactl.base.recipe"
LABEL_PACKAGES = "org.sagactl.base.debian-packages"
LABEL_STACK = "org.sagactl.base.stack"


@dataclass(frozen=True, slots=True)
class Recipe:
    packages: tuple[str, ...]
    """Debian packages installed with mmdebstrap (minbase variant, no recommends)."""
    setup: tuple[str, ...] = ()
    """Shell commands run in the new root (our own, never an upload's)."""
    env: Mapping[str, str] = field(default_factory=dict)


RECIPES: Mapping[str, Recipe] = {
    "python": Recipe(
        ("python3", "python3-pip", "python3-venv", "ca-certificates"),
        ("python3 -m venv /opt/venv",),
        {"PATH": f"/opt/venv/bin:{DEFAULT_PATH}", "VIRTUAL_ENV": "/opt/venv"},
    ),
    "node": Recipe(("nodejs", "npm", "ca-certificates")),
    "go": Recipe(("golang-go", "ca-certificates"), env={"GOTOOLCHAIN": "local"}),
    "ruby": Recipe(("ruby", "ruby-bundler", "ca-certificates")),
    "rust": Recipe(("cargo", "rustc", "ca-certificates")),
}
STACKS = (*RECIPES, "static")
BASE_HINTS = {
    "bun": "an image with bun on PATH (e.g. one built FROM the node base that runs "
    "`npm install -g bun`, whose npm package ships the binary)",
}


def recipe_hash(stack: str, options: BuilderOptions) -> str:
    if stack == "static":
        described: object = {"busybox": baseimage.BUSYBOX}
    else:
        described = asdict(RECIPES[stack]) | {"env": dict(RECIPES[stack].env)}
    text = json.dumps(
        {"format": FORMAT, "stack": stack, "suite": options.debian_suite, "recipe": described},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def image_name(stack: str, options: BuilderOptions) -> str:
    return f"localhost/sagactl/base-{stack}:{recipe_hash(stack, options)[:16]}"


async def exists(buildah: list[str], name: str) -> bool:
    status, _ = await run_quiet([*buildah, "inspect", "--type", "image", name])
    return status == 0


async def ensure(
    stack: str, options: BuilderOptions, buildah: list[str], on_output: OutputCallback
) -> str:
    """The base image of `stack` in buildah's storage, made first when missing."""
    if stack not in STACKS:
        hint = BASE_HINTS.get(stack, "an image that has the stack's tools")
        raise ImageBuildFailed(
            f"no base image is made here for the {stack} stack: set "
            f"SAGACTL_BASE_IMAGE_{stack.upper()} to {hint}"
        )
    name = image_name(stack, options)
    if await exists(buildah, name):
        return name
    locks = options.work_dir / "bases"
    locks.mkdir(parents=True, exist_ok=True)
    lock = await anyio.to_thread.run_sync(_lock, locks / f"{stack}.lock")
    try:
        if await exists(buildah, name):
            return name
        on_output(f"base {stack}: making {name} from Debian packages (once)")
        for left in locks.glob(f".{stack}-*"):  # by a maker that died; we hold the lock
            await anyio.to_thread.run_sync(shutil.rmtree, left, True)
        with tempfile.TemporaryDirectory(dir=locks, prefix=f".{stack}-") as scratch:
            await _make(stack, name, options, buildah, Path(scratch), on_output)
        on_output(f"base {stack}: made {name}")
        return name
    finally:
        lock.close()


def _lock(path: Path) -> TextIO:
    file = path.open("a")
    fcntl.flock(file, fcntl.LOCK_EX)
    return file


async def _make(
    stack: str,
    name: str,
    options: BuilderOptions,
    buildah: list[str],
    scratch: Path,
    on_output: OutputCallback,
) -> None:
    rootfs = scratch / "rootfs.tar"
    versions = scratch / "versions.txt"
    if stack == "static":
        await anyio.to_thread.run_sync(baseimage.make_rootfs_tar, rootfs)
        packages = await _host_version("busybox-static")
        env: Mapping[str, str] = {"PATH": DEFAULT_PATH}
    else:
        recipe = RECIPES[stack]
        await _mmdebstrap(recipe, options, rootfs, versions, on_output, stack)
        packages = versions.read_text().split()
        env = {"PATH": DEFAULT_PATH, **recipe.env}
    labels = {
        LABEL_STACK: stack,
        LABEL_RECIPE: recipe_hash(stack, options),
        LABEL_PACKAGES: " ".join(packages),
    }
    await _import(buildah, rootfs, name, env, labels, on_output, stack)


async def _mmdebstrap(
    recipe: Recipe,
    options: BuilderOptions,
    rootfs: Path,
    versions: Path,
    on_output: OutputCallback,
    stack: str,
) -> None:
    query = "${Package}=${Version}\\n"
    argv = [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        "--format=tar",
        f"--include={','.join(recipe.packages)}",
        "--dpkgopt=force-unsafe-io",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        '--aptopt=Acquire::Languages "none"',
        *(f"--customize-hook=chroot \"$1\" sh -c '{command}'" for command in recipe.setup),
        f"--customize-hook=chroot \"$1\" dpkg-query -W -f='{query}' "
        f"{' '.join(recipe.packages)} > {versions}",
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
        options.debian_suite,
        str(rootfs),
        options.debian_mirror,
    ]
    await run_streaming(
        argv, lambda line: on_output(f"base {stack}: {line}"), what=f"mmdebstrap of {stack}"
    )


async def _host_version(package: str) -> list[str]:
    status, output = await run_quiet(["dpkg-query", "-W", "-f=${Package}=${Version}", package])
    return [output.strip()] if status == 0 else []


async def _import(
    buildah: list[str],
    rootfs: Path,
    name: str,
    env: Mapping[str, str],
    labels: Mapping[str, str],
    on_output: OutputCallback,
    stack: str,
) -> None:
    status, output = await run_quiet([*buildah, "from", "--quiet", "scratch"])
    container = output.strip().splitlines()[-1] if status == 0 and output.strip() else ""
    if status != 0 or not container:
        raise ImageBuildFailed(f"buildah from scratch failed: {output.strip()[-500:]}")
    try:
        on_output(f"base {stack}: importing the root filesystem")
        config = [*buildah, "config", "--cmd", "/bin/sh", "--workingdir", "/"]
        for key, value in env.items():
            config += ["--env", f"{key}={value}"]
        for key, value in labels.items():
            config += ["--label", f"{key}={value}"]
        for step in (
            [*buildah, "add", "--quiet", container, str(rootfs), "/"],
            [*config, container],
            [*buildah, "commit", "--quiet", "--rm", container, name],
        ):
            await run_streaming(step, on_output, what=f"importing the {stack} base")
        container = ""
    finally:
        if container:
            await run_quiet([*buildah, "rm", container])


async def labels_of(buildah: list[str], name: str) -> dict[str, str]:
    """The labels of an image in buildah's storage."""
    status, output = await run_quiet([*buildah, "inspect", "--type", "image", name])
    if status != 0:
        raise ImageBuildFailed(f"no image {name}: {output.strip()[-300:]}")
    config = json.loads(output).get("OCIv1", {}).get("config", {})
    return dict(config.get("Labels") or {})
