"""Issue 10, escapes 1-3: an upload never reaches the host through the image builders.

Base images come only from the operator or a registry reference; digests are checked
before they touch a path; layout files are opened without following links; the generated
Containerfile is serialised; RUN steps run in their own namespaces without capabilities and
cannot reach the host's services. The buildah cases are real builds under runc.
"""
# ruff: noqa: ASYNC221, ASYNC240  (tests check real files)

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sagactl.plugins.builders import buildnet, ocilayout, uploaded
from sagactl.plugins.builders.base import (
    BuilderOptions,
    BuildSpec,
    ImageBuildFailed,
    base_image_for,
)
from sagactl.plugins.builders.buildah import BuildahBuilder
from sagactl.plugins.builders.containerfile import Containerfile, UnsafeValue, quote
from sagactl.plugins.builders.oci import OciBuilder
from sagactl.plugins.builders.references import InvalidReference, check_digest, choose_base
from sagactl.plugins.builders.safefs import OutsideRoot, open_beneath
from sagactl.plugins.builders.stacks import InstallPlan
from sagactl.plugins.builders.templates import containerfile
from sagactl.plugins.builders.uploaded import RefusedContainerfile

NAMESPACES = ("pid", "mnt", "ipc", "uts", "net")
HOSTILE_BASES = [
    "/var/lib/sagactl/build/sources/abc",
    "oci:/tmp/crafted:latest",
    "oci-archive:/tmp/x.tar",
    "dir:/etc",
    "containers-storage:localhost/other:1",
    "docker://docker.io/library/busybox",
    "busybox\nRUN touch /injected",
    "busybox:latest RUN x",
    "../../etc",
    "Busybox",
    "",
    "localhost:5432/x",
    "127.0.0.1/x:1",
    "[::1]:5000/x",
    "192.0.2.2:2024/x",
]


def _spec(context: Path, **changes: object) -> BuildSpec:
    values: dict[str, object] = {
        "app": "esc",
        "version": "esc-v1",
        "context_dir": context,
        "stack": "static",
        "command": "busybox httpd -f -p $PORT -h /app",
        "port": 8080,
    }
    values.update(changes)
    return BuildSpec(**values)  # type: ignore[arg-type]


class TestBaseImageChoice:
    @pytest.mark.parametrize("ref", HOSTILE_BASES)
    def test_upload_cannot_name_a_path_or_transport(self, ref: str) -> None:
        """An app's base_image that is a path, a transport or not a reference is refused."""
        with pytest.raises(InvalidReference):
            choose_base(ref, None, ())

    @pytest.mark.parametrize(
        "ref",
        [
            "busybox",
            "docker.io/library/python:3.12-slim",
            "registry.example:5000/a/b_c:1.0",
            f"quay.io/x/y@sha256:{'a' * 64}",
        ],
    )
    def test_registry_references_pass(self, ref: str) -> None:
        """A plain registry reference is the app's to choose."""
        assert choose_base(ref, None, ()) == ref

    def test_operator_bases_pass_as_configured(self, tmp_path: Path) -> None:
        """A configured base (even a layout path) may be named; the stack default applies
        when the app names none."""
        options = BuilderOptions(
            work_dir=tmp_path,
            base_images={"static": "oci:/srv/bases/static:1"},
            allowed_base_images=frozenset({"oci:/srv/bases/extra:2"}),
        )
        for chosen in ("oci:/srv/bases/static:1", "oci:/srv/bases/extra:2"):
            spec = _spec(tmp_path, base_image=chosen)
            assert base_image_for(spec, options) == chosen
        assert base_image_for(_spec(tmp_path), options) == "oci:/srv/bases/static:1"
        with pytest.raises(InvalidReference):
            base_image_for(_spec(tmp_path, base_image="oci:/srv/bases/other:1"), options)


class TestSandboxSettings:
    def test_settings_from_the_environment(self) -> None:
        """The operator's allow-list, the RUN steps' network and CA bundle; a bad network
        is one clear error naming the variable."""
        from sagactl.actions.build_from_tar.settings import BuildSettings
        from sagactl.engine.settings import SettingError

        options = BuildSettings.from_env(
            {
                "SAGACTL_ALLOWED_BASE_IMAGES": "oci:/srv/a:1  localhost/b:2",
                "SAGACTL_BUILD_NETWORK": "none",
                "SAGACTL_CA_BUNDLE": "none",
            }
        ).builder_options()
        assert options.allowed_base_images == {"oci:/srv/a:1", "localhost/b:2"}
        assert options.network == "none" and options.ca_bundle is None
        defaults = BuildSettings.from_env({}).builder_options()
        assert defaults.network == "outbound" and defaults.isolation == "oci"
        assert str(defaults.ca_bundle) == "/etc/ssl/certs/ca-certificates.crt"
        with pytest.raises(SettingError, match="SAGACTL_BUILD_NETWORK"):
            BuildSettings.from_env({"SAGACTL_BUILD_NETWORK": "host"})


class TestDigests:
    @pytest.mark.parametrize(
        "digest",
        ["sha256:../../etc/passwd" + "a" * 47, "sha256:" + "A" * 64, "sha256:" + "a" * 63,
         "md5:" + "a" * 32, "sha256:" + "a" * 64 + "\n", "sha512:" + "a" * 64, "a" * 64],
    )  # fmt: skip
    def test_malformed_digests_are_refused(self, digest: str) -> None:
        with pytest.raises(InvalidReference):
            check_digest(digest)

    def test_layout_with_a_traversing_digest_is_refused(self, tmp_path: Path) -> None:
        """The attack of issue 10: a layer digest `sha256:../../...` never becomes a path,
        and the layout is refused before any blob is linked."""
        layout = _crafted_layout(tmp_path / "crafted", f"sha256:../../../{'a' * 55}")
        with pytest.raises(ocilayout.LayoutError, match="not a digest"):
            ocilayout.read_image(layout)

    def test_symlinked_blob_is_not_followed(self, tmp_path: Path) -> None:
        """A blob that is a symlink (to a host file) is refused, not read."""
        secret = tmp_path / "secret"
        secret.write_text("host file")
        layout = _crafted_layout(tmp_path / "crafted", f"sha256:{'b' * 64}")
        (layout / "blobs" / "sha256" / ("b" * 64)).symlink_to(secret)
        image = ocilayout.read_image(layout)
        writer = ocilayout.LayoutWriter(tmp_path / "out")
        with pytest.raises(ocilayout.LayoutError, match="symlink"):
            writer.copy_blob(image, image.layers[0])
        assert not (tmp_path / "out" / "blobs" / "sha256" / ("b" * 64)).exists()

    def test_oci_builder_refuses_an_uploaded_layout(self, tmp_path: Path) -> None:
        """The two-build attack: the second build names the first one's staged layout."""
        layout = _crafted_layout(tmp_path / "crafted", f"sha256:../../../{'a' * 55}")
        builder = OciBuilder(BuilderOptions(work_dir=tmp_path / "work"))
        context = tmp_path / "src"
        context.mkdir()
        (context / "index.html").write_text("hi")
        with pytest.raises(InvalidReference):
            builder._build(_spec(context, base_image=f"oci:{layout}:latest"), lambda _: None)
        assert not (tmp_path / "work" / "oci" / "esc-v1").exists()


def _crafted_layout(root: Path, layer_digest: str) -> Path:
    """A layout whose manifest lists `layer_digest` (written as an attacker would)."""
    writer = ocilayout.LayoutWriter(root)
    config = writer.put_json({"rootfs": {"diff_ids": []}, "config": {}}, ocilayout.MEDIA_CONFIG)
    manifest = writer.put_json(
        {
            "schemaVersion": 2,
            "config": config.to_json(),
            "layers": [
                {"mediaType": ocilayout.MEDIA_LAYER_GZIP, "digest": layer_digest, "size": 1}
            ],
        },
        ocilayout.MEDIA_MANIFEST,
    )
    tagged = ocilayout.Descriptor(
        manifest.media_type, manifest.digest, manifest.size, {ocilayout.REF_NAME: "latest"}
    )
    writer.write_index([tagged])
    return root


class TestSafePaths:
    @pytest.mark.parametrize("version", ["../../etc", "a/b", "", ".hidden", "x\n", "UP-v1"])
    def test_build_names_that_would_name_paths_are_refused(
        self, tmp_path: Path, version: str
    ) -> None:
        """App and version name files under the work dir: only a plain name passes."""
        with pytest.raises(InvalidReference):
            _spec(tmp_path, version=version)

    def test_open_beneath_refuses_links_and_dotdot(self, tmp_path: Path) -> None:
        (tmp_path / "dir").mkdir()
        (tmp_path / "dir" / "file").write_text("x")
        (tmp_path / "link").symlink_to(tmp_path / "dir")
        os.close(open_beneath(tmp_path, "dir/file"))
        for bad in ("link/file", "../x", "/etc/passwd", "dir/../dir/file"):
            with pytest.raises(OutsideRoot):
                os.close(open_beneath(tmp_path, bad))


class TestContainerfileSerialiser:
    def test_newline_in_base_image_cannot_inject(self) -> None:
        with pytest.raises(UnsafeValue):
            Containerfile("busybox\nRUN touch /injected")

    def test_values_are_quoted_literally(self, tmp_path: Path) -> None:
        """Env values keep `$`, quotes and backslashes; a command with a newline stays on
        one JSON line; a control character in an env value is refused, naming it."""
        spec = _spec(
            tmp_path,
            env={"A": "$HOME 'q' \\ \"d\""},
            command="echo hi\nRUN touch /injected",
        )
        text = containerfile(spec, "localhost/sagactl/busybox:latest", InstallPlan())
        lines = text.splitlines()
        assert [line.split(" ")[0] for line in lines] == [
            "FROM", "WORKDIR", "ENV", "EXPOSE", "CMD", "COPY",
        ]  # fmt: skip
        assert not any(line.startswith("RUN") for line in lines)
        cmd = json.loads(lines[4].removeprefix("CMD "))
        assert cmd == ["/bin/sh", "-c", "echo hi\nRUN touch /injected"]
        assert quote("it's") == "'it'\"'\"'s'"
        with pytest.raises(UnsafeValue, match="environment variable B"):
            containerfile(_spec(tmp_path, env={"B": "x\nRUN id"}), "busybox", InstallPlan())
        with pytest.raises(UnsafeValue):
            containerfile(_spec(tmp_path, env={"A B": "x"}), "busybox", InstallPlan())


pytestmark_buildah = [pytest.mark.buildah, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def listener() -> tuple[str, int]:
    """A TCP service on every host address (0.0.0.0), standing in for the host's services."""
    server = socket.create_server(("0.0.0.0", 0))
    server.listen(8)
    yield server.getsockname()[1]  # type: ignore[misc]
    server.close()


@pytest.mark.anyio
@pytest.mark.buildah
@pytest.mark.slow
class TestRunStepSandbox:
    async def test_run_step_is_sandboxed(
        self, tmp_path: Path, buildah_storage: dict[str, Path], listener: int
    ) -> None:
        """A hostile Containerfile: its RUN step is PID 1 of its own PID namespace, has no
        capabilities, cannot chroot, cannot reach PostgreSQL on 127.0.0.1:5432 nor any host
        address, and what it writes to /tmp stays in the image."""
        if buildnet.missing_tools():
            pytest.skip(f"missing {buildnet.missing_tools()}")
        marker = f"sagactl-escape-{secrets.token_hex(6)}"
        targets = ["127.0.0.1:5432", "10.0.2.2:5432"] + [
            f"{address}:{port}"
            for address in buildnet.host_addresses()
            for port in (5432, listener)
        ]
        probes = " ".join(
            f"(nc -w 2 {t.split(':')[0]} {t.split(':')[1]} </dev/null >/dev/null 2>&1 "
            f"&& echo REACHED-{t} || echo refused-{t});"
            for t in targets
        )
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Containerfile").write_text(
            "FROM localhost/sagactl/busybox:latest\n"
            f"RUN echo pid1=$(cat /proc/1/comm) $$; grep CapEff /proc/self/status; "
            f"for n in {' '.join(NAMESPACES)}; do echo ns-$n=$(readlink /proc/self/ns/$n); done; "
            f"(chroot / true && echo CHROOT-OK || echo chroot-denied); "
            f"touch /tmp/{marker} /{marker}; {probes}\n"
        )
        builder = BuildahBuilder(BuilderOptions(work_dir=tmp_path / "w", **buildah_storage))  # type: ignore[arg-type]
        await builder.prepare()
        lines: list[str] = []
        await builder.build(
            _spec(context, stack="dockerfile", containerfile=context / "Containerfile"),
            lines.append,
        )
        said = [line for line in lines if not line.startswith("STEP")]  # not the command
        assert "CapEff:\t0000000000000000" in said
        assert "chroot-denied" in said and "CHROOT-OK" not in said
        assert not [line for line in said if line.startswith("REACHED")], said
        for target in targets:
            assert f"refused-{target}" in said
        assert "pid1=sh 1" in said, said
        for kind in NAMESPACES:  # each namespace differs from the host's
            assert f"ns-{kind}={os.readlink(f'/proc/self/ns/{kind}')}" not in said
            assert any(line.startswith(f"ns-{kind}={kind}:[") for line in said), said
        assert not os.path.exists(f"/tmp/{marker}") and not os.path.exists(f"/{marker}")
        assert not [n for n in os.listdir(buildnet.NETNS_DIR) if f"-{os.getpid()}-" in n]

    async def test_injected_base_image_builds_nothing(
        self, tmp_path: Path, buildah_storage: dict[str, Path]
    ) -> None:
        """An app.toml base_image with a newline (or a host path) is refused before buildah
        runs: no image, no RUN step."""
        builder = BuildahBuilder(BuilderOptions(work_dir=tmp_path, **buildah_storage))  # type: ignore[arg-type]
        context = tmp_path / "src"
        context.mkdir()
        (context / "index.html").write_text("hi")
        for ref in ("localhost/sagactl/busybox:latest\nRUN touch /injected", "oci:/tmp/x:1"):
            with pytest.raises(InvalidReference):
                spec = _spec(context, base_image=ref, app="inj", version="inj-v1")
                await builder.build(spec, lambda _: None)
        listed = subprocess.run(
            [*builder.command, "images", "--format", "{{.Name}}"], capture_output=True, text=True
        )
        assert "localhost/sagactl/inj" not in listed.stdout

    async def test_failing_run_step_fails_with_its_lines(
        self, tmp_path: Path, buildah_storage: dict[str, Path]
    ) -> None:
        """A RUN step that fails fails the build with the step's last lines."""
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Containerfile").write_text(
            "FROM localhost/sagactl/busybox:latest\nRUN echo the-tool-said-no; exit 3\n"
        )
        builder = BuildahBuilder(BuilderOptions(work_dir=tmp_path / "w", **buildah_storage))  # type: ignore[arg-type]
        with pytest.raises(ImageBuildFailed, match="the-tool-said-no"):
            await builder.build(
                _spec(context, stack="dockerfile", containerfile=context / "Containerfile"),
                lambda _: None,
            )


@pytest.mark.anyio
class TestShowHidesHostPaths:
    async def test_source_dir_only_for_the_operator(self, sqlite_db: Any) -> None:
        """show_app leaves out each version's staged source_dir unless asked (app show
        --paths on the host); an uploader reading app show (or the API) learns no path."""
        from sagactl.actions.build_from_tar import records

        async with sqlite_db.transaction() as tx:
            allocated = await records.allocate_version(tx, "shop")
            await records.create_version(
                tx,
                app="shop",
                version=allocated.version,
                number=allocated.number,
                artifact_id=allocated.artifact_id,
                image="localhost/sagactl/shop:shop-v1",
                digest="sha256:" + "a" * 64,
                services={},
                source_dir="/var/lib/sagactl/build/sources/secret-stream",
            )
        async with sqlite_db.transaction() as tx:
            shown = await records.show_app(tx, "shop")
            operator = await records.show_app(tx, "shop", host_paths=True)
        assert "secret-stream" not in json.dumps(shown)
        assert operator["versions"][0]["source_dir"].endswith("secret-stream")


class TestUploadedContainerfile:
    """What buildah itself does on the host for a Containerfile: FROM, --from, ADD URLs."""

    @pytest.mark.parametrize(
        "text",
        [
            "FROM oci:/var/lib/sagactl/build/sources/x/layout:latest\n",
            "FROM busybox\nCOPY --from=oci:/tmp/layout:1 /etc/shadow /x\n",
            "FROM dir:/etc\n",
            "FROM localhost:5000/evil/img\n",
            "FROM 127.0.0.1:2024/x\n",
            "ARG B=oci:/tmp/l:1\nFROM $B\n",
            "FROM busybox\nADD http://127.0.0.1:5432/ /x\n",
            'FROM busybox\nADD ["https://example.com/a", "/a"]\n',
            "FROM busybox\nADD \\\n  http://127.0.0.1:2024/ /x\n",
            "FROM busybox\nRUN --mount=type=bind,from=oci:/tmp/l:1,target=/m true\n",
            "FROM busybox\nONBUILD RUN id\n",
        ],
    )
    def test_refused(self, text: str) -> None:
        with pytest.raises(RefusedContainerfile, match=r"Containerfile:\d+"):
            uploaded.check(text, ())

    def test_accepted(self) -> None:
        """Stages, scratch, registry references and the operator's bases pass."""
        uploaded.check(
            "# escape=\\\nFROM docker.io/library/golang:1.22 AS build\nRUN go build\n"
            "FROM scratch\nCOPY --from=build /app /app\n"
            "FROM oci:/srv/bases/py:1\nCOPY --from=0 /x /x\nADD local.tar /opt/\n",
            {"oci:/srv/bases/py:1"},
        )

    @pytest.mark.anyio
    async def test_buildah_refuses_before_running(
        self, tmp_path: Path, buildah_storage: dict[str, Path]
    ) -> None:
        """The builder checks the upload's Containerfile before buildah opens anything."""
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Containerfile").write_text(f"FROM oci:{tmp_path}/layout:latest\n")
        builder = BuildahBuilder(BuilderOptions(work_dir=tmp_path / "w", **buildah_storage))  # type: ignore[arg-type]
        spec = _spec(context, stack="dockerfile", containerfile=context / "Containerfile")
        with pytest.raises(RefusedContainerfile, match="Containerfile:1"):
            await builder.build(spec, lambda _: None)
