"""Makes a tiny busybox base image offline, from the host's static busybox.

As an OCI layout (for the oci builder, or anything that reads `oci:` refs) and, from that
layout, as a buildah image (`localhost/sagactl/busybox:latest`) for Containerfile builds.
Run `python -m sagactl.plugins.builders.baseimage DIR [--buildah]` to make one by hand.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

from . import ocilayout, storage

BUSYBOX = "/bin/busybox"
TAG = "latest"
BUILDAH_NAME = "localhost/sagactl/busybox:latest"


def _applets(busybox: str) -> list[str]:
    listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    return sorted({name for name in listed.stdout.split() if name and "/" not in name})


def _fill(tar: tarfile.TarFile, busybox: str) -> None:
    def directory(name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        tar.addfile(info)

    def text(name: str, body: str) -> None:
        data = body.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    for name in ("bin", "etc", "root", "var", "var/www"):
        directory(name)
    directory("tmp", 0o1777)
    with open(busybox, "rb") as file:
        info = tar.gettarinfo(fileobj=file, arcname="bin/busybox")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o755
        tar.addfile(info, file)
    for applet in _applets(busybox):
        if applet == "busybox":
            continue
        link = tarfile.TarInfo(f"bin/{applet}")
        link.type = tarfile.SYMTYPE
        link.linkname = "busybox"
        tar.addfile(link)
    text("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    text("etc/group", "root:x:0:\nnogroup:x:65534:\n")


def make_rootfs_tar(dest: Path, *, busybox: str = BUSYBOX) -> None:
    """Writes the busybox root filesystem as a plain tar at `dest`."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        _fill(tar, busybox)


def make_oci_base(dest: Path, *, busybox: str = BUSYBOX, tag: str = TAG) -> str:
    """Writes a busybox OCI layout at `dest` (replacing it); returns its `oci:DIR:TAG` ref."""
    shutil.rmtree(dest, ignore_errors=True)
    writer = ocilayout.LayoutWriter(dest)
    layer = writer.write_layer(lambda tar: _fill(tar, busybox))
    ocilayout.write_image(
        dest,
        tag=tag,
        base=None,
        layers=[layer],
        config={
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
        },
        history=[{"created_by": "sagactl baseimage: busybox-static"}],
    )
    return f"oci:{dest}:{tag}"


def buildah_args(
    buildah: str = "buildah",
    storage_driver: str = "vfs",
    storage_root: Path | None = None,
    run_root: Path | None = None,
) -> list[str]:
    """buildah and its global storage options (`auto`: the driver storage.py picks)."""
    chosen = storage.resolve(buildah, storage_driver, storage_root, run_root)
    args = [buildah, *chosen.args()]
    if storage_root is not None:
        args += ["--root", str(storage_root)]
    if run_root is not None:
        args += ["--runroot", str(run_root)]
    return args


def make_buildah_base(
    layout: Path,
    *,
    name: str = BUILDAH_NAME,
    buildah: list[str] | None = None,
) -> str:
    """Makes the OCI layout at `layout` and pulls it into buildah's storage as `name`."""
    ref = make_oci_base(layout)
    command = buildah or buildah_args()
    pulled = subprocess.run(
        [*command, "pull", "--quiet", ref], check=True, capture_output=True, text=True
    )
    subprocess.run([*command, "tag", pulled.stdout.strip(), name], check=True, capture_output=True)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="directory of the OCI layout to write")
    parser.add_argument("--buildah", action="store_true", help=f"also make {BUILDAH_NAME}")
    args = parser.parse_args()
    print(make_buildah_base(args.dest) if args.buildah else make_oci_base(args.dest))


if __name__ == "__main__":
    main()
