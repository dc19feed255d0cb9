"""The embedded oci builder: layouts that skopeo and umoci accept, with the app on a base."""
# ruff: noqa: ASYNC221  (tests poll real processes and files)

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sagactl.plugins.builders.base import BuilderOptions, BuildSpec, ImageBuildFailed
from sagactl.plugins.builders.oci import OciBuilder

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _spec(context: Path, **changes: object) -> BuildSpec:
    values: dict[str, object] = {
        "app": "python-web",
        "version": "python-web-v1",
        "context_dir": context,
        "stack": "python",
        "command": "python3 app.py",
        "port": 8080,
        "env": {"GREETING": "hello"},
        "labels": {"org.opencontainers.image.version": "python-web-v1"},
    }
    values.update(changes)
    return BuildSpec(**values)  # type: ignore[arg-type]


def _skopeo(ref: str, *extra: str) -> dict[str, object]:
    out = subprocess.run(["skopeo", "inspect", *extra, ref], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


class TestOciBuilder:
    async def test_on_busybox_base(self, tmp_path: Path, busybox_oci: str) -> None:
        """Base layers plus the source layer; skopeo reads config and entrypoint; umoci unpacks
        a rootfs with busybox and the app (symlinks intact)."""
        builder = OciBuilder(BuilderOptions(work_dir=tmp_path, base_images={"python": busybox_oci}))
        await builder.prepare()
        lines: list[str] = []
        image = await builder.build(_spec(EXAMPLES / "python-web"), lines.append)
        assert image.ref == f"oci:{tmp_path}/oci/python-web-v1:python-web-v1"
        assert any(line.startswith("oci: base") for line in lines)
        inspected = _skopeo(image.ref)
        assert inspected["Digest"] == image.digest
        assert len(inspected["Layers"]) == 2  # type: ignore[arg-type]
        config = _skopeo(image.ref, "--config")["config"]
        assert config["Entrypoint"] == ["/bin/sh", "-c", "python3 app.py"]  # type: ignore[index]
        assert "GREETING=hello" in config["Env"]  # type: ignore[index]
        assert "PORT=8080" in config["Env"]  # type: ignore[index]
        assert config["WorkingDir"] == "/app"  # type: ignore[index]
        bundle = tmp_path / "bundle"
        path, tag = image.ref.removeprefix("oci:").rsplit(":", 1)
        unpacked = subprocess.run(
            ["umoci", "unpack", "--image", f"{path}:{tag}", str(bundle)], capture_output=True
        )
        assert unpacked.returncode == 0, unpacked.stderr
        rootfs = bundle / "rootfs"
        assert (rootfs / "bin" / "busybox").is_file()
        assert os.readlink(rootfs / "bin" / "sh") == "busybox"
        assert (rootfs / "app" / "app.py").read_bytes() == (
            EXAMPLES / "python-web/app.py"
        ).read_bytes()
        assert os.readlink(rootfs / "app" / "requirements.txt") == "requirements/prod.txt"
        shutil.rmtree(bundle)

    async def test_without_base(self, tmp_path: Path) -> None:
        """No local base: a one-layer image with the command split into argv; umoci stat works."""
        builder = OciBuilder(BuilderOptions(work_dir=tmp_path))
        await builder.prepare()
        lines: list[str] = []
        image = await builder.build(
            _spec(EXAMPLES / "static-site", stack="static", command="busybox httpd -f -p 8080"),
            lines.append,
        )
        assert "source layer only" in lines[0]
        config = _skopeo(image.ref, "--config")["config"]
        assert config["Entrypoint"] == ["busybox", "httpd", "-f", "-p", "8080"]  # type: ignore[index]
        path = image.ref.removeprefix("oci:").rsplit(":", 1)[0]
        stat = subprocess.run(
            ["umoci", "stat", "--image", f"{path}:python-web-v1"], capture_output=True, text=True
        )
        assert stat.returncode == 0, stat.stderr
        assert "sagactl oci: COPY . /app" in stat.stdout

    async def test_rebuild_is_replaced_and_remove(self, tmp_path: Path) -> None:
        """Building a version again replaces its layout; remove_image deletes it once."""
        builder = OciBuilder(BuilderOptions(work_dir=tmp_path))
        await builder.prepare()
        first = await builder.build(_spec(EXAMPLES / "static-site"), lambda _: None)
        second = await builder.build(_spec(EXAMPLES / "static-site"), lambda _: None)
        assert first.ref == second.ref
        assert sorted(p.name for p in (tmp_path / "oci").iterdir()) == ["python-web-v1"]
        assert await builder.remove_image(second.ref) is True
        assert await builder.remove_image(second.ref) is False
        assert list((tmp_path / "oci").iterdir()) == []

    async def test_containerfile_refused(self, tmp_path: Path) -> None:
        """An app with its own Containerfile needs RUN steps: the oci builder says so."""
        builder = OciBuilder(BuilderOptions(work_dir=tmp_path))
        context = EXAMPLES / "dockerfile-app"
        with pytest.raises(ImageBuildFailed, match="build this app with buildah or buildkit"):
            await builder.build(
                _spec(context, stack="dockerfile", containerfile=context / "Containerfile"),
                lambda _: None,
            )

    async def test_broken_base(self, tmp_path: Path) -> None:
        """An operator's base that is not a layout fails the build, naming the base."""
        (tmp_path / "notalayout").mkdir()
        base = f"oci:{tmp_path}/notalayout:latest"
        builder = OciBuilder(BuilderOptions(work_dir=tmp_path, base_images={"static": base}))
        with pytest.raises(ImageBuildFailed, match="base image oci:"):
            await builder.build(_spec(EXAMPLES / "static-site", stack="static"), lambda _: None)
        assert not any((tmp_path / "oci").glob(".*partial"))
