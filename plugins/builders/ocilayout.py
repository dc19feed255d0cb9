"""Reads and writes OCI image layouts (oci-layout, index.json, blobs/sha256), in-process.

Layers are written streaming: tar -> sha256 (diff id) -> gzip -> sha256 (digest) -> file,
so memory stays flat whatever the source size.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
import shutil
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from . import safefs
from .references import InvalidReference, check_digest

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"
MAX_METADATA = 4 << 20
"""index.json, manifests and configs are small; a bigger one is not a layout we made."""

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


class LayoutError(Exception):
    """An OCI layout that is missing, malformed or lacks the asked-for tag."""


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptor:
        return cls(
            data["mediaType"], data["digest"], int(data["size"]), data.get("annotations", {})
        )


@dataclass(frozen=True, slots=True)
class Image:
    """An image read from a layout: its layers (with their blob files) and config."""

    layout: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    layers: tuple[Descriptor, ...]
    manifest_digest: str

    def open_blob(self, digest: str) -> int:
        """A descriptor of the blob, opened without following any symlink in the layout."""
        try:
            return safefs.open_beneath(self.layout, blob_name(digest))
        except safefs.OutsideRoot as exc:
            raise LayoutError(str(exc)) from None


def blob_name(digest: str) -> str:
    """`blobs/ALGORITHM/HEX`, once the digest is checked to be `algorithm:hex`."""
    try:
        algorithm, _, hexdigest = check_digest(digest).partition(":")
    except InvalidReference as exc:
        raise LayoutError(str(exc)) from None
    if algorithm != "sha256":
        raise LayoutError(f"unsupported digest algorithm {algorithm!r} (only sha256)")
    return f"blobs/sha256/{hexdigest}"


def blob_path(layout: Path, digest: str) -> Path:
    return layout / blob_name(digest)


def go_arch() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def parse_ref(ref: str) -> tuple[Path, str | None]:
    """`oci:DIR[:TAG]` or `DIR[:TAG]` -> (DIR, TAG or None)."""
    body = ref.removeprefix("oci:")
    path, sep, tag = body.rpartition(":")
    if sep and "/" not in tag and tag:
        return Path(path), tag
    return Path(body), None


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class _Hashing:
    """A write-only file that hashes and counts what passes through to `target`."""

    def __init__(self, target: _Writable) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


class LayoutWriter:
    """Builds one layout directory; blobs are content-addressed, index.json written last."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def put_bytes(self, data: bytes, media_type: str) -> Descriptor:
        digest = hashlib.sha256(data).hexdigest()
        path = self.blobs / digest
        if not path.exists():
            path.write_bytes(data)
        return Descriptor(media_type, f"sha256:{digest}", len(data))

    def put_json(self, value: Any, media_type: str) -> Descriptor:
        return self.put_bytes(
            json.dumps(value, sort_keys=True, separators=(",", ":")).encode(), media_type
        )

    def copy_blob(self, source: Image, descriptor: Descriptor) -> None:
        """Links (else copies) a blob of `source` into this layout; the blob was opened
        beneath its layout, so a symlink planted there cannot name a host file."""
        target = blob_path(self.root, descriptor.digest)
        if target.exists():
            return
        fd = source.open_blob(descriptor.digest)
        try:
            try:
                # The /proc magic link names the opened inode, not a path that could change.
                os.link(f"/proc/self/fd/{fd}", target, follow_symlinks=True)
            except OSError:
                with open(target, "wb") as out, os.fdopen(os.dup(fd), "rb") as src:
                    shutil.copyfileobj(src, out)
        finally:
            os.close(fd)

    def write_layer(self, fill: Callable[[tarfile.TarFile], None]) -> tuple[Descriptor, str]:
        """A gzip layer from whatever `fill` adds to the tar; (descriptor, diff id)."""
        tmp = self.blobs / ".layer.partial"
        with tmp.open("wb") as raw:
            compressed = _Hashing(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0) as gz:
                plain = _Hashing(gz)
                with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    fill(tar)
            raw.flush()
            os.fsync(raw.fileno())
        digest = compressed.hash.hexdigest()
        tmp.replace(self.blobs / digest)
        return (
            Descriptor(MEDIA_LAYER_GZIP, f"sha256:{digest}", compressed.size),
            f"sha256:{plain.hash.hexdigest()}",
        )

    def write_index(self, manifests: list[Descriptor]) -> None:
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
        tmp = self.root / ".index.json.partial"
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True))
        tmp.replace(self.root / "index.json")


def add_tree(tar: tarfile.TarFile, source: Path, prefix: str) -> int:
    """Adds `source` under `prefix` with root ownership and sorted names; returns file count.

    Symlinks stay symlinks; hard links inside the tree stay hard links.
    """
    count = 0
    prefix = prefix.strip("/")

    def entries() -> Iterator[tuple[Path, str]]:
        yield source, prefix
        for directory, dirnames, filenames in os.walk(source):
            dirnames.sort()
            base = Path(directory)
            relative = base.relative_to(source).as_posix()
            for name in sorted([*dirnames, *filenames]):
                rel = name if relative == "." else f"{relative}/{name}"
                yield base / name, f"{prefix}/{rel}" if prefix else rel

    for path, arcname in entries():
        if not arcname:
            continue
        info = tar.gettarinfo(str(path), arcname)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if info.isreg():
            # O_NOFOLLOW: a file swapped for a symlink after the listing is not followed.
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as file:
                tar.addfile(info, file)
        else:
            tar.addfile(info)
        count += 1
    return count


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_image(layout: Path, tag: str | None = None) -> Image:
    """The image tagged `tag` in `layout` (the only one when `tag` is None)."""
    try:
        index = _read_json(layout, "index.json")
        manifests = [Descriptor.from_json(m) for m in index.get("manifests", [])]
        if tag is not None:
            manifests = [m for m in manifests if m.annotations.get(REF_NAME) == tag]
        if len(manifests) != 1:
            wanted = f"tag {tag!r}" if tag else "exactly one image"
            raise LayoutError(f"{layout} does not hold {wanted}")
        manifest_desc = manifests[0]
        manifest = _read_json(layout, blob_name(manifest_desc.digest))
        config = _read_json(layout, blob_name(manifest["config"]["digest"]))
        layers = tuple(Descriptor.from_json(layer) for layer in manifest.get("layers", []))
        for layer in layers:
            blob_name(layer.digest)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LayoutError(f"{layout} is not a valid OCI image layout ({exc!r:.200})") from None
    return Image(layout, manifest, config, layers, manifest_desc.digest)


def _read_json(layout: Path, name: str) -> dict[str, Any]:
    try:
        value = json.loads(safefs.read_beneath(layout, name, MAX_METADATA))
    except (OSError, ValueError) as exc:
        raise LayoutError(f"{layout} is not an OCI image layout ({name}: {exc})") from None
    if not isinstance(value, dict):
        raise LayoutError(f"{layout}: {name} is not a JSON object")
    return value


def write_image(
    root: Path,
    *,
    tag: str,
    base: Image | None,
    layers: list[tuple[Descriptor, str]],
    config: Mapping[str, Any],
    history: list[dict[str, Any]],
) -> Descriptor:
    """Writes config, manifest and index for an image of `base`'s layers plus `layers`.

    `root` must already hold the new layers' blobs (LayoutWriter.write_layer).
    """
    writer = LayoutWriter(root)
    all_layers: list[Descriptor] = []
    diff_ids: list[str] = []
    base_history: list[dict[str, Any]] = []
    if base is not None:
        for layer in base.layers:
            writer.copy_blob(base, layer)
            all_layers.append(layer)
        diff_ids.extend(base.config.get("rootfs", {}).get("diff_ids", []))
        base_history = list(base.config.get("history", []))
    for descriptor, diff_id in layers:
        all_layers.append(descriptor)
        diff_ids.append(diff_id)
    created = now_rfc3339()
    image_config = {
        "created": created,
        "architecture": (base.config.get("architecture") if base else None) or go_arch(),
        "os": (base.config.get("os") if base else None) or "linux",
        "config": dict(config),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [*base_history, *({"created": created, **h} for h in history)],
    }
    config_desc = writer.put_json(image_config, MEDIA_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [layer.to_json() for layer in all_layers],
    }
    manifest_desc = writer.put_json(manifest, MEDIA_MANIFEST)
    tagged = Descriptor(
        manifest_desc.media_type, manifest_desc.digest, manifest_desc.size, {REF_NAME: tag}
    )
    writer.write_index([tagged])
    return tagged
