"""Built images made ready for runc: one root per image, sharing what versions share.

Under `<dir>/`:
- `roots/<manifest digest>/`: `image.json` (how the root was made, and the image config)
  and `rootfs/`, the root runc is given (read-only in the sandbox's config);
- `layers/<diff id>/`: for `oci:DIR:TAG` images (the oci builder), each layer unpacked
  once (layers.py) and shared by every image that has it; the root is the overlay mount
  of its layers, so a new version unpacks only its own new layers, not its base;
- `.lock`: one file lock over all of it, held by whoever unpacks, mounts or prunes (and,
  through `locked()`, while a sandbox's bundle is written, so a prune never takes a root a
  starting sandbox is about to use).

An image in buildah's storage (the buildah builder) is not exported at all: its root is a
buildah working container of it (`sagactl-root-<digest>`), mounted by buildah (with
overlay storage, over the very layers the builds made and share) and bound at `rootfs/`.

`prune(keep)` unmounts and removes the roots not in `keep` (and their containers), and
the layers only those roots used.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagactl.plugins.builders import ocilayout

from . import layers

DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")


class ImageUnavailable(RuntimeError):
    """The image cannot be unpacked (missing, unreadable, or a tool failed)."""


@dataclass(frozen=True, slots=True)
class UnpackedImage:
    rootfs: Path
    config: dict[str, Any]
    """The image config's `config` (Entrypoint, Cmd, Env, WorkingDir, User...)."""
    new_layers: int = 0
    """How many of its layers this call unpacked (the rest were shared)."""


def _hex(digest: str, what: str) -> str:
    match = DIGEST.match(digest)
    if match is None:
        raise ImageUnavailable(f"not {what}: {digest!r}")
    return match[1]


def _describe(root: Path, described: dict[str, Any]) -> None:
    """Writes the root's `image.json` whole (a root without one is not made yet)."""
    root.mkdir(parents=True, exist_ok=True)
    partial = root / ".image.json"
    partial.write_text(json.dumps(described))
    partial.replace(root / "image.json")


class ImageCache:
    def __init__(self, root: Path, buildah: Callable[[], Sequence[str]]) -> None:
        self.root = root
        self.buildah = buildah
        """buildah with the builder's storage options (resolved on first use)."""
        self.layers = root / "layers"
        self.roots = root / "roots"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def check(ref: str, digest: str) -> str:
        """The hex of `digest`; ImageUnavailable for a digest or ref that would name paths."""
        key = _hex(digest, "an image digest")
        if not IMAGE_REF.match(ref) and not ref.startswith("oci:/"):
            raise ImageUnavailable(f"not an image reference: {ref!r}")
        return key

    def unpack(self, ref: str, digest: str) -> UnpackedImage:
        """The image `ref` (manifest `digest`) with its root mounted; call under `locked()`."""
        key = self.check(ref, digest)
        root = self.roots / key
        made = 0
        if not (root / "image.json").is_file():
            if ref.startswith("oci:"):
                made = self._make_layered_root(ref, root)
            else:
                self._make_container_root(ref, key, root)
        known = json.loads((root / "image.json").read_text())
        rootfs = root / "rootfs"
        if not layers.is_mounted(rootfs):  # made just now, or unmounted by a reboot
            if known.get("container"):
                self._mount_container(known["container"], rootfs)
            else:
                try:
                    layers.mount(rootfs, self.layers, known["layers"])
                except layers.LayerError as exc:
                    raise ImageUnavailable(str(exc)) from None
        return UnpackedImage(rootfs, dict(known["config"]), made)

    def _make_layered_root(self, ref: str, root: Path) -> int:
        """A root that is the overlay of `ref`'s layers, each unpacked once and shared."""
        image = self._read(ref)
        diff_ids = image.config.get("rootfs", {}).get("diff_ids") or []
        if len(diff_ids) != len(image.layers):
            raise ImageUnavailable(f"{ref}: its config does not list one diff id per layer")
        names: list[str] = []
        made = 0
        self.layers.mkdir(parents=True, exist_ok=True)
        for layer, diff_id in zip(image.layers, diff_ids, strict=True):
            name = _hex(diff_id, "a layer diff id")
            names.append(name)
            if (self.layers / name).is_dir():
                continue
            try:
                layers.extract(image.layout / ocilayout.blob_name(layer.digest), self.layers / name)
            except (layers.LayerError, ocilayout.LayoutError, OSError) as exc:
                raise ImageUnavailable(f"unpacking a layer of {ref}: {exc}") from None
            made += 1
        _describe(root, {"ref": ref, "layers": names, "config": image.config.get("config") or {}})
        return made

    def _read(self, ref: str) -> ocilayout.Image:
        path, tag = ocilayout.parse_ref(ref)
        if not (path / "index.json").is_file():
            raise ImageUnavailable(f"{ref}: no OCI layout at {path}")
        try:
            return ocilayout.read_image(path, tag)
        except ocilayout.LayoutError as exc:
            raise ImageUnavailable(f"{ref}: {exc}") from None

    def _buildah(self, *args: str) -> str:
        done = subprocess.run([*self.buildah(), *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise ImageUnavailable(f"buildah {args[0]} failed: {tail}")
        return done.stdout.strip()

    def _make_container_root(self, ref: str, key: str, root: Path) -> None:
        """A root that is a buildah working container of `ref` (nothing is unpacked)."""
        shown = json.loads(self._buildah("inspect", "--type", "image", ref))
        config = (shown.get("OCIv1") or {}).get("config") or {}
        container = f"sagactl-root-{key[:32]}"
        subprocess.run([*self.buildah(), "rm", container], capture_output=True, check=False)
        self._buildah("from", "--pull-never", "--quiet", "--name", container, ref)
        _describe(root, {"ref": ref, "container": container, "layers": [], "config": config})

    def _mount_container(self, container: str, rootfs: Path) -> None:
        merged = Path(self._buildah("mount", container))
        for name in ("proc", "dev", "sys"):  # runc mounts over them
            (merged / name).mkdir(exist_ok=True)
        if not (merged / "tmp").exists():
            (merged / "tmp").mkdir(mode=0o1777)
            (merged / "tmp").chmod(0o1777)  # runc gives a tmpfs its mount point's mode
        rootfs.mkdir(parents=True, exist_ok=True)
        try:
            layers.bind(merged, rootfs)
        except layers.LayerError as exc:
            raise ImageUnavailable(str(exc)) from None

    def prune(self, keep: Iterable[Path]) -> list[str]:
        """Removes the roots not in `keep` (root directories or paths inside them), then the
        layers and exported images no remaining root uses; call under `locked()`. Returns
        the removed roots' digests."""
        kept = {self._root_of(path) for path in keep}
        removed: list[str] = []
        if self.roots.is_dir():
            for root in self.roots.iterdir():
                if root.name in kept or not DIGEST.match(f"sha256:{root.name}"):
                    continue
                try:
                    layers.unmount(root / "rootfs")
                except layers.LayerError:
                    continue  # still in use (a container nobody recorded): kept
                self._remove_container(root)
                shutil.rmtree(root, ignore_errors=True)
                removed.append(f"sha256:{root.name}")
        used = self._layers_in_use()
        if self.layers.is_dir():
            for layer in self.layers.iterdir():
                if layer.name not in used and not layer.name.startswith("."):
                    shutil.rmtree(layer, ignore_errors=True)
        return removed

    def _remove_container(self, root: Path) -> None:
        try:
            container = json.loads((root / "image.json").read_text()).get("container")
        except (OSError, ValueError):
            return
        if container:  # buildah unmounts it too
            subprocess.run([*self.buildah(), "rm", container], capture_output=True, check=False)

    def _root_of(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.roots.resolve()).parts[0]
        except (ValueError, IndexError):
            return ""

    def _layers_in_use(self) -> set[str]:
        used: set[str] = set()
        if self.roots.is_dir():
            for described in self.roots.glob("*/image.json"):
                used.update(json.loads(described.read_text())["layers"])
        return used
