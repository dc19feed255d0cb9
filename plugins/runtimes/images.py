"""Built images made ready for runc: layers unpacked once and shared, roots mounted from them.

Under `<dir>/`:
- `layers/<diff id>/`: each layer unpacked once (layers.py), shared by every image that
  has it, so a new version of an app unpacks only its own new layers, not its base;
- `roots/<manifest digest>/`: `image.json` (its layers, bottom first, and the image
  config) and `rootfs/`, the read-only overlay mount of those layers;
- `layout/`: the OCI layout images from buildah's storage are exported to, uncompressed
  (blob digest = diff id), tagged by manifest digest; blobs already there are not copied
  again;
- `.lock`: one file lock over all of it, held by whoever unpacks, mounts or prunes (and,
  through `locked()`, while a sandbox's bundle is written, so a prune never takes a root a
  starting sandbox is about to use).

`oci:DIR:TAG` refs (the oci builder) are read in place. `prune(keep)` unmounts and removes
the roots not in `keep` and the layers and exported blobs only those roots used.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
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


class ImageCache:
    def __init__(self, root: Path, buildah: Callable[[], Sequence[str]]) -> None:
        self.root = root
        self.buildah = buildah
        """buildah with the builder's storage options (resolved only when exporting)."""
        self.layers = root / "layers"
        self.roots = root / "roots"
        self.layout = root / "layout"

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
            made = self._make_root(ref, key, root)
        known = json.loads((root / "image.json").read_text())
        rootfs = root / "rootfs"
        if not os.path.ismount(rootfs):  # made just now, or unmounted by a reboot
            try:
                layers.mount(rootfs, self.layers, known["layers"])
            except layers.LayerError as exc:
                raise ImageUnavailable(str(exc)) from None
        return UnpackedImage(rootfs, dict(known["config"]), made)

    def _make_root(self, ref: str, key: str, root: Path) -> int:
        image = self._read(ref, key)
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
        root.mkdir(parents=True, exist_ok=True)
        described = {"ref": ref, "layers": names, "config": image.config.get("config") or {}}
        partial = root / ".image.json"
        partial.write_text(json.dumps(described))
        partial.replace(root / "image.json")
        return made

    def _read(self, ref: str, key: str) -> ocilayout.Image:
        if ref.startswith("oci:"):
            path, tag = ocilayout.parse_ref(ref)
            if not (path / "index.json").is_file():
                raise ImageUnavailable(f"{ref}: no OCI layout at {path}")
        else:
            path, tag = self.layout, key
            self._export(ref, key)
        try:
            return ocilayout.read_image(path, tag)
        except ocilayout.LayoutError as exc:
            raise ImageUnavailable(f"{ref}: {exc}") from None

    def _export(self, ref: str, key: str) -> None:
        """Pushes `ref` from buildah's storage into the shared layout, uncompressed (its
        blobs are then named by the layers' diff ids, and those already there are kept)."""
        target = f"oci:{self.layout}:{key}"
        argv = [*self.buildah(), "push", "--quiet", "--disable-compression", ref, target]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise ImageUnavailable(f"exporting {ref} failed: {tail}")

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
                shutil.rmtree(root, ignore_errors=True)
                removed.append(f"sha256:{root.name}")
        used, described = self._in_use()
        if self.layers.is_dir():
            for layer in self.layers.iterdir():
                if layer.name not in used and not layer.name.startswith("."):
                    shutil.rmtree(layer, ignore_errors=True)
        self._prune_layout(described)
        return removed

    def _root_of(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.roots.resolve()).parts[0]
        except (ValueError, IndexError):
            return ""

    def _in_use(self) -> tuple[set[str], set[str]]:
        """(the layers, the root digests) the remaining roots use."""
        used: set[str] = set()
        roots: set[str] = set()
        if self.roots.is_dir():
            for described in self.roots.glob("*/image.json"):
                used.update(json.loads(described.read_text())["layers"])
                roots.add(described.parent.name)
        return used, roots

    def _prune_layout(self, roots: set[str]) -> None:
        """Drops exported images no root uses from the layout, then its unreferenced blobs."""
        index_path = self.layout / "index.json"
        if not index_path.is_file():
            return
        index = json.loads(index_path.read_text())
        manifests = [
            m
            for m in index.get("manifests", [])
            if (m.get("annotations") or {}).get(ocilayout.REF_NAME) in roots
        ]
        index["manifests"] = manifests
        partial = self.layout / ".index.json"
        partial.write_text(json.dumps(index))
        partial.replace(index_path)
        wanted: set[str] = set()
        for descriptor in manifests:
            wanted.add(descriptor["digest"])
            blob = self.layout / ocilayout.blob_name(descriptor["digest"])
            manifest = json.loads(blob.read_text())
            wanted.add(manifest["config"]["digest"])
            wanted.update(layer["digest"] for layer in manifest.get("layers", []))
        blobs = self.layout / "blobs" / "sha256"
        if blobs.is_dir():
            for blob in blobs.iterdir():
                if f"sha256:{blob.name}" not in wanted:
                    blob.unlink(missing_ok=True)
