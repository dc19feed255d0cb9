"""Built images unpacked for runc: one read-only root filesystem per image digest, cached.

An image is unpacked once with `umoci unpack` into `<dir>/<hex>/` (its `rootfs/` and the
`config.json` umoci derives from the image config: entrypoint, env, user), under a file
lock so concurrent starts of one version unpack it once. `oci:DIR:TAG` refs (the oci
builder) are read in place; other refs name images in buildah's storage (the buildah
builder), which are first pushed to a temporary OCI layout.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")


class ImageUnavailable(RuntimeError):
    """The image cannot be unpacked (missing, unreadable, or a tool failed)."""


@dataclass(frozen=True, slots=True)
class UnpackedImage:
    rootfs: Path
    config: dict[str, Any]
    """The runtime config umoci derived from the image (`process.args`, `process.env`...)."""


def _run(argv: Sequence[str], what: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise ImageUnavailable(f"{what} failed: {tail}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _layout_of(ref: str) -> tuple[Path, str] | None:
    """(DIR, TAG) of an `oci:DIR:TAG` ref, else None (a buildah storage name)."""
    if not ref.startswith("oci:"):
        return None
    body = ref.removeprefix("oci:")
    path, sep, tag = body.rpartition(":")
    if not sep or not tag or "/" in tag:
        return Path(body), "latest"
    return Path(path), tag


def unpack(
    ref: str, digest: str, cache: Path, *, buildah: Sequence[str] = ("buildah",)
) -> UnpackedImage:
    """The image `ref` (manifest `digest`) unpacked under `cache`, made on first use."""
    match = DIGEST.match(digest)
    if match is None:
        raise ImageUnavailable(f"not an image digest: {digest!r}")
    if not IMAGE_REF.match(ref) and not ref.startswith("oci:/"):
        raise ImageUnavailable(f"not an image reference: {ref!r}")
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / match[1]
    with _locked(cache / f"{match[1]}.lock"):
        if not (target / "config.json").is_file():
            _unpack_into(ref, target, cache / f".{match[1]}.partial", buildah)
    config: dict[str, Any] = json.loads((target / "config.json").read_text())
    return UnpackedImage(target / "rootfs", config)


def _unpack_into(ref: str, target: Path, partial: Path, buildah: Sequence[str]) -> None:
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        layout = _layout_of(ref)
        if layout is None:
            exported = partial / "layout"
            _run([*buildah, "push", "--quiet", ref, f"oci:{exported}:latest"], f"exporting {ref}")
            layout = (exported, "latest")
        if not (layout[0] / "index.json").is_file():
            raise ImageUnavailable(f"{ref}: no OCI layout at {layout[0]}")
        bundle = partial / "bundle"
        _run(
            ["umoci", "unpack", "--image", f"{layout[0]}:{layout[1]}", str(bundle)],
            f"unpacking {ref}",
        )
        bundle.replace(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
