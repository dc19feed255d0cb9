"""The buildah builder: real builds with chroot isolation on vfs, RUN steps that really ran."""
# ruff: noqa: ASYNC221  (tests poll real processes and files)

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sagactl.plugins.builders.base import BuilderOptions, BuildSpec, ImageBuildFailed
from sagactl.plugins.builders.baseimage import buildah_args
from sagactl.plugins.builders.buildah import BuildahBuilder

pytestmark = [pytest.mark.anyio, pytest.mark.buildah, pytest.mark.slow]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def builder(tmp_path: Path, buildah_storage: dict[str, Path]) -> BuildahBuilder:
    return BuildahBuilder(
        BuilderOptions(
            work_dir=tmp_path,
            base_images={
                "python": "localhost/sagactl/busybox:latest",
                "static": "localhost/sagactl/busybox:latest",
            },
            **buildah_storage,  # type: ignore[arg-type]
        )
    )


def _run_in(builder: BuildahBuilder, image: str, *command: str) -> str:
    """Runs a command in a fresh container of `image` (buildah from + run + rm)."""
    base = builder.command
    container = subprocess.run([*base, "from", image], capture_output=True, text=True, check=True)
    name = container.stdout.strip()
    try:
        out = subprocess.run(
            [*base, "run", "--isolation", "oci", "--runtime", "runc", name, "--", *command],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout
    finally:
        subprocess.run([*base, "rm", name], capture_output=True, check=False)


class TestBuildahBuilder:
    async def test_containerfile_run_step_really_ran(self, builder: BuildahBuilder) -> None:
        """The dockerfile example's RUN step wrote BUILD_INFO into the image; the cluster host
        was visible to RUN; output streamed line by line; digest is the manifest's."""
        endpoint = await builder.prepare()
        assert endpoint.startswith("buildah:vfs:")
        context = EXAMPLES / "dockerfile-app"
        lines: list[str] = []
        image = await builder.build(
            BuildSpec(
                app="dockerfile-app",
                version="dockerfile-app-v1",
                context_dir=context,
                stack="dockerfile",
                containerfile=context / "Containerfile",
                extra_hosts={"cluster.local": "10.9.8.7"},
            ),
            lines.append,
        )
        assert image.ref == "localhost/sagactl/dockerfile-app:dockerfile-app-v1"
        assert image.digest.startswith("sha256:")
        assert any(line.startswith("STEP 4/6: RUN") for line in lines)
        assert _run_in(builder, image.ref, "cat", "/app/BUILD_INFO").startswith("built at ")
        listed = subprocess.run(
            [*builder.command, "images", "--format", "{{.Name}}:{{.Tag}}"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "localhost/sagactl/dockerfile-app:dockerfile-app-v1" in listed.stdout
        assert await builder.remove_image(image.ref) is True
        assert await builder.remove_image(image.ref) is False

    async def test_stack_template(self, builder: BuildahBuilder) -> None:
        """A static app without a Containerfile builds from the template on the configured
        base: the source is at /app, the command and env are in the image config."""
        image = await builder.build(
            BuildSpec(
                app="static-site",
                version="static-site-v2",
                context_dir=EXAMPLES / "static-site",
                stack="static",
                command="busybox httpd -f -p $PORT -h /app",
                port=8080,
                env={"GREETING": "hi $HOME"},
            ),
            lambda _: None,
        )
        index = (EXAMPLES / "static-site" / "index.html").read_text()
        assert _run_in(builder, image.ref, "cat", "/app/index.html") == index
        inspected = subprocess.run(
            [*builder.command, "inspect", "--type", "image", image.ref],
            capture_output=True,
            text=True,
            check=True,
        )
        config = json.loads(inspected.stdout)["OCIv1"]["config"]
        assert config["Cmd"] == ["/bin/sh", "-c", "busybox httpd -f -p $PORT -h /app"]
        assert "GREETING=hi $HOME" in config["Env"]
        assert config["WorkingDir"] == "/app"
        assert not list((builder.files).glob("*.Containerfile"))
        await builder.remove_image(image.ref)

    async def test_missing_install_tool_fails_the_build(self, builder: BuildahBuilder) -> None:
        """A python app on a base without pip fails with the tool's lines, never an image
        that cannot start (the requirements.txt symlink is followed inside the app)."""
        with pytest.raises(ImageBuildFailed, match="pip") as info:
            await builder.build(
                BuildSpec(
                    app="python-web",
                    version="python-web-v2",
                    context_dir=EXAMPLES / "python-web",
                    stack="python",
                    command="python3 app.py",
                    port=8080,
                ),
                lambda _: None,
            )
        assert "exit status" in str(info.value)

    async def test_failing_run_step(self, builder: BuildahBuilder, tmp_path: Path) -> None:
        """A failing RUN step raises ImageBuildFailed with the exit status and the output tail."""
        context = tmp_path / "app"
        context.mkdir()
        (context / "Containerfile").write_text(
            "FROM localhost/sagactl/busybox:latest\nRUN echo about to fail && exit 3\n"
        )
        with pytest.raises(ImageBuildFailed, match="exit status") as info:
            await builder.build(
                BuildSpec(
                    app="bad",
                    version="bad-v1",
                    context_dir=context,
                    stack="dockerfile",
                    containerfile=context / "Containerfile",
                ),
                lambda _: None,
            )
        assert "about to fail" in info.value.output_tail


class TestBuildahArgs:
    def test_storage_options(self, tmp_path: Path) -> None:
        """Storage driver and roots are passed to every buildah call."""
        assert buildah_args("buildah", "vfs", tmp_path / "r", tmp_path / "rr") == [
            "buildah",
            "--storage-driver",
            "vfs",
            "--root",
            str(tmp_path / "r"),
            "--runroot",
            str(tmp_path / "rr"),
        ]
