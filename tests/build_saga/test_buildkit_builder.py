"""The buildkit builder: argument wiring checked against a FAKE buildctl script; the real
buildkitd cannot run on this machine (it needs a privileged daemon), so that test is skipped."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from sagactl.plugins.builders.base import BuilderOptions, BuildSpec, ImageBuildFailed
from sagactl.plugins.builders.buildkit import BuildkitBuilder

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

FAKE_BUILDCTL = """#!/bin/sh
# FAKE buildctl for argument-wiring tests: records its argv, answers like buildctl would.
printf '%s\\n' "$@" > "$FAKE_LOG.$1.$3"
case "$3" in
  debug) echo "ID  PLATFORMS"; exit 0 ;;
  build)
    while [ $# -gt 0 ]; do
      case "$1" in --metadata-file) shift; meta="$1" ;; esac
      shift
    done
    echo "#1 [internal] load build definition"
    echo '{"containerimage.digest": "sha256:DIGEST"}' > "$meta"
    exit 0 ;;
esac
exit 1
""".replace("DIGEST", "b" * 64)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_buildctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "fake-buildctl"
    script.write_text(FAKE_BUILDCTL)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "argv"))
    return script


def _argv(tmp_path: Path, command: str) -> list[str]:
    return (tmp_path / f"argv.--addr.{command}").read_text().splitlines()


class TestBuildkitWiring:
    async def test_prepare_checks_workers(self, tmp_path: Path, fake_buildctl: Path) -> None:
        """prepare asks the configured buildkitd for its workers and returns its address."""
        builder = BuildkitBuilder(
            BuilderOptions(
                work_dir=tmp_path, buildctl=str(fake_buildctl), buildkit_addr="tcp://bk:1234"
            )
        )
        assert await builder.prepare() == "tcp://bk:1234"
        assert _argv(tmp_path, "debug") == ["--addr", "tcp://bk:1234", "debug", "workers"]

    async def test_build_arguments(self, tmp_path: Path, fake_buildctl: Path) -> None:
        """build passes context, generated Containerfile, hosts, labels and an OCI output,
        streams output and reads the digest from the metadata file."""
        builder = BuildkitBuilder(
            BuilderOptions(
                work_dir=tmp_path,
                buildctl=str(fake_buildctl),
                buildkit_addr="tcp://bk:1234",
                base_images={"static": "docker.io/library/busybox:1"},
            )
        )
        lines: list[str] = []
        image = await builder.build(
            BuildSpec(
                app="site",
                version="site-v3",
                context_dir=EXAMPLES / "static-site",
                stack="static",
                command="busybox httpd -f",
                port=8080,
                extra_hosts={"cluster.local": "10.0.0.5"},
                labels={"k": "v"},
            ),
            lines.append,
        )
        argv = _argv(tmp_path, "build")
        assert argv[:5] == ["--addr", "tcp://bk:1234", "build", "--progress", "plain"]
        pairs = dict(zip(argv[5::2], argv[6::2], strict=False))
        assert f"context={EXAMPLES / 'static-site'}" in argv
        assert "add-hosts=cluster.local=10.0.0.5" in argv
        assert "label:k=v" in argv
        assert pairs["--frontend"] == "dockerfile.v0"
        recipe = tmp_path / "buildkit" / "site-v3.recipe" / "Containerfile"
        assert f"dockerfile={recipe.parent}" in argv
        assert recipe.read_text().startswith("FROM docker.io/library/busybox:1\n")
        assert image.digest == "sha256:" + "b" * 64
        assert image.ref == f"oci-archive:{tmp_path}/buildkit/site-v3.oci.tar"
        assert lines == ["#1 [internal] load build definition"]

    async def test_no_address(self, tmp_path: Path) -> None:
        """Without a buildkitd address the builder refuses clearly."""
        builder = BuildkitBuilder(BuilderOptions(work_dir=tmp_path))
        with pytest.raises(ImageBuildFailed, match="needs a buildkitd address"):
            await builder.prepare()

    async def test_unreachable(self, tmp_path: Path, fake_buildctl: Path) -> None:
        """A buildkitd that does not answer fails prepare, naming the address."""
        broken = tmp_path / "broken-buildctl"
        broken.write_text("#!/bin/sh\necho 'connection refused' >&2\nexit 1\n")
        broken.chmod(0o755)
        builder = BuildkitBuilder(
            BuilderOptions(work_dir=tmp_path, buildctl=str(broken), buildkit_addr="tcp://nowhere:1")
        )
        with pytest.raises(ImageBuildFailed, match="nowhere:1 does not answer: connection refused"):
            await builder.prepare()


class TestBuildkitReal:
    @pytest.mark.skipif(
        not (shutil.which("buildctl") and os.environ.get("SAGACTL_TEST_BUILDKIT_ADDR")),
        reason="needs buildctl and a running buildkitd (SAGACTL_TEST_BUILDKIT_ADDR); buildkitd "
        "is not installed here and needs a privileged daemon",
    )
    async def test_real_build(self, tmp_path: Path) -> None:
        """A real buildctl build of the static example against the configured buildkitd."""
        builder = BuildkitBuilder(
            BuilderOptions(
                work_dir=tmp_path,
                buildkit_addr=os.environ["SAGACTL_TEST_BUILDKIT_ADDR"],
                base_images={"static": "docker.io/library/busybox:1"},
            )
        )
        await builder.prepare()
        image = await builder.build(
            BuildSpec(
                app="site",
                version="site-v1",
                context_dir=EXAMPLES / "static-site",
                stack="static",
                command="busybox httpd -f",
            ),
            lambda _: None,
        )
        assert image.digest.startswith("sha256:")
        assert json.dumps(image.ref)
