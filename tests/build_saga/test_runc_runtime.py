"""The runc runtime: real images (busybox base + source layer, oci builder), real
containers, real HTTP. Isolation, ports, stop (TERM then KILL), recovery through runc's
state, reused ids."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
from sagactl.plugins.builders.base import BuilderOptions, BuildSpec, BuiltImage
from sagactl.plugins.builders.oci import OciBuilder
from sagactl.plugins.runtimes.base import RuntimeOptions, SandboxHandle, SandboxSpec
from sagactl.plugins.runtimes.env import UnsafeEnv
from sagactl.plugins.runtimes.images import ImageUnavailable
from sagactl.plugins.runtimes.local import process_start
from sagactl.plugins.runtimes.runc import ContainerFailed, RuncRuntime, runc_usable

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(runc_usable() is not None, reason=f"runc unusable: {runc_usable()}"),
]

FACTS = (
    "mkdir -p /tmp/www; "
    'echo "cwd=$(pwd)" > /tmp/www/facts; '
    'echo "pid1=$(tr "\\0" " " < /proc/1/cmdline)" >> /tmp/www/facts; '
    "n=$(ls /proc | grep -c '^[0-9]'); echo pids=$n >> /tmp/www/facts; "
    'echo "greeting=$GREETING port=$PORT app=$SAGACTL_APP" >> /tmp/www/facts; '
    'echo "uid=$(id -u) gid=$(id -g) caps=$(grep CapEff /proc/self/status)" >> /tmp/www/facts; '
    "for f in {probes}; do test -e $f && echo seen=$f >> /tmp/www/facts; done; "
    "exec httpd -f -p 127.0.0.1:$PORT -h /tmp/www"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def image(tmp_path: Path, busybox_oci: str) -> BuiltImage:
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.html").write_text("hello from the image\n")
    builder = OciBuilder(
        BuilderOptions(work_dir=tmp_path / "images", base_images={"static": busybox_oci})
    )
    await builder.prepare()
    spec = BuildSpec(app="demo", version="demo-v1", context_dir=source, stack="static")
    return await builder.build(spec, lambda line: None)


@pytest.fixture
def runtime(tmp_path: Path) -> RuncRuntime:
    return RuncRuntime(RuntimeOptions(state_dir=tmp_path / "state" / "sandboxes", grace=5))


def _spec(built: BuiltImage, command: str, **changes: Any) -> SandboxSpec:
    values: dict[str, Any] = {
        "sandbox_id": "demo-v1-web-1",
        "app": "demo",
        "version": "demo-v1",
        "service": "web",
        "command": command,
        "cwd": Path("/nonexistent"),
        "port": 8080,
        "image": built.ref,
        "digest": built.digest,
    }
    values.update(changes)
    return SandboxSpec(**values)


async def _fetch(port: int | None, path: str = "/") -> bytes:
    assert port is not None
    url = f"http://127.0.0.1:{port}{path}"
    with anyio.fail_after(10):
        while True:
            try:
                return await anyio.to_thread.run_sync(
                    lambda: urllib.request.urlopen(url, timeout=1).read()
                )
            except OSError:
                await anyio.sleep(0.05)


def _runc_ids(runtime: RuncRuntime) -> list[str]:
    listed = subprocess.run(
        ["runc", "--root", str(runtime.root), "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [c["id"] for c in json.loads(listed.stdout or "null") or []]


class TestIsolation:
    async def test_serves_from_the_image_in_its_own_namespaces(
        self, runtime: RuncRuntime, image: BuiltImage, tmp_path: Path
    ) -> None:
        """The service answers HTTP on its allocated port over the host network, from /app
        in the image's filesystem: its own PID namespace (PID 1 is the runtime's shell, a
        handful of processes), none of the host's files, the app's env and PORT; it runs
        as nobody (uid 65534), with no capability, and still binds $PORT."""
        secret = tmp_path / "host-secret"
        secret.write_text("the host's")
        probes = f"{secret} /proc/{os.getpid()} /etc/os-release /usr/bin/python3"
        handle = await runtime.start(
            _spec(image, FACTS.format(probes=probes), env={"GREETING": "hi"})
        )
        assert handle.port is not None and handle.port != 8080
        facts = (await _fetch(handle.port, "/facts")).decode()
        assert "cwd=/app\n" in facts
        assert "pid1=/bin/sh -c " in facts
        lines = facts.splitlines()
        pids = int(next(line for line in lines if line.startswith("pids=")).split("=")[1])
        assert pids < 10, facts
        assert f"greeting=hi port={handle.port} app=demo" in facts
        assert "uid=65534 gid=65534 caps=CapEff:\t0000000000000000\n" in facts
        assert not [line for line in lines if line.startswith("seen=")], facts  # no host path
        assert await runtime.status(handle) == "running"
        assert _runc_ids(runtime) == ["demo-v1-web-1"]
        assert await runtime.stop(handle, grace=5) is True
        assert await runtime.status(handle) == "exited"
        assert _runc_ids(runtime) == []
        assert process_start(handle.pid) is None

    async def test_root_filesystem_is_read_only_but_tmp_is_not(
        self, runtime: RuncRuntime, image: BuiltImage
    ) -> None:
        """Writes to /app fail (the image is shared by the version's sandboxes); /tmp works."""
        command = (
            "mkdir -p /tmp/www; (touch /app/x && echo app-writable || echo app-ro) > "
            "/tmp/www/w; exec httpd -f -p 127.0.0.1:$PORT -h /tmp/www"
        )
        handle = await runtime.start(_spec(image, command))
        assert await _fetch(handle.port, "/w") == b"app-ro\n"
        await runtime.stop(handle, grace=5)

    async def test_the_image_own_command_runs_without_a_procfile_command(
        self, runtime: RuncRuntime, tmp_path: Path, busybox_oci: str
    ) -> None:
        """An empty command runs the image's entrypoint (a Containerfile's CMD)."""
        source = tmp_path / "own"
        source.mkdir()
        (source / "index.html").write_text("own command\n")
        builder = OciBuilder(
            BuilderOptions(work_dir=tmp_path / "own-images", base_images={"static": busybox_oci})
        )
        built = await builder.build(
            BuildSpec(
                app="own",
                version="own-v1",
                context_dir=source,
                stack="static",
                command="exec httpd -f -p 127.0.0.1:$PORT -h /app",
            ),
            lambda line: None,
        )
        handle = await runtime.start(_spec(built, "", sandbox_id="own-v1-web-1"))
        assert await _fetch(handle.port, "/index.html") == b"own command\n"
        await runtime.stop(handle, grace=5)


class TestLifecycle:
    async def test_sigkill_after_grace(self, runtime: RuncRuntime, image: BuiltImage) -> None:
        """A service ignoring SIGTERM is killed after the grace period; its container is
        deleted and its port lease released."""
        handle = await runtime.start(_spec(image, "trap '' TERM; exec sleep 600", port=None))
        assert handle.port is None
        started = anyio.current_time()
        assert await runtime.stop(handle, grace=0.5) is True
        assert 0.5 <= anyio.current_time() - started < 5
        assert _runc_ids(runtime) == []

    async def test_sigterm_stops_at_once(self, runtime: RuncRuntime, image: BuiltImage) -> None:
        """A service that exits on SIGTERM stops well within the grace period (PID 1 passes
        the signal on)."""
        handle = await runtime.start(_spec(image, "exec httpd -f -p 127.0.0.1:$PORT -h /app"))
        await _fetch(handle.port, "/index.html")
        started = anyio.current_time()
        assert await runtime.stop(handle, grace=10) is True
        assert anyio.current_time() - started < 3

    async def test_two_sandboxes_never_share_a_port(
        self, runtime: RuncRuntime, image: BuiltImage
    ) -> None:
        """Two versions side by side each get their own port and answer on it."""
        serve = "exec httpd -f -p 127.0.0.1:$PORT -h /app"
        first = await runtime.start(_spec(image, serve, sandbox_id="demo-v1-web-a"))
        second = await runtime.start(
            _spec(image, serve, sandbox_id="demo-v2-web-b", version="demo-v2")
        )
        assert first.port != second.port
        assert await _fetch(first.port, "/index.html") == await _fetch(second.port, "/index.html")
        for handle in (first, second):
            await runtime.stop(handle, grace=5)
        assert not any((runtime.leases).iterdir())

    async def test_found_again_after_a_crash(
        self, runtime: RuncRuntime, image: BuiltImage, tmp_path: Path
    ) -> None:
        """A new runtime object (another sagactl process after a crash) finds the container
        through runc's state from the recorded handle, and stops it."""
        handle = await runtime.start(_spec(image, "exec sleep 600", port=None))
        recorded = SandboxHandle(**json.loads(json.dumps(_as_dict(handle))))
        again = RuncRuntime(RuntimeOptions(state_dir=runtime.options.state_dir, grace=1))
        assert await again.status(recorded) == "running"
        assert await again.stop(recorded, grace=1) is True
        assert _runc_ids(runtime) == []

    async def test_a_reused_id_is_not_taken_for_the_recorded_container(
        self, runtime: RuncRuntime, image: BuiltImage
    ) -> None:
        """After the recorded container is gone, another one under the same id is not it:
        the old handle reports it exited and stopping it leaves the new one running."""
        old = await runtime.start(_spec(image, "exec sleep 600", port=None))
        await runtime.stop(old, grace=1)
        new = await runtime.start(_spec(image, "exec sleep 600", port=None))
        assert await runtime.status(old) == "exited"
        assert await runtime.stop(old, grace=1) is False
        assert await runtime.status(new) == "running"
        assert await runtime.stop(new, grace=1) is True

    async def test_a_repeated_start_replaces_the_leftover(
        self, runtime: RuncRuntime, image: BuiltImage
    ) -> None:
        """A start repeated under one id (its first attempt cut short by a crash) replaces
        the leftover container instead of failing or leaving it: one container remains."""
        first = await runtime.start(_spec(image, "exec sleep 600"))
        second = await runtime.start(_spec(image, "exec sleep 600"))
        assert process_start(first.pid) is None
        assert _runc_ids(runtime) == ["demo-v1-web-1"]
        assert second.port == first.port  # the lease belongs to the sandbox id
        await runtime.stop(second, grace=1)


class TestFailures:
    async def test_a_missing_image_starts_nothing(
        self, runtime: RuncRuntime, image: BuiltImage, tmp_path: Path
    ) -> None:
        """An image that is not there fails clearly; no container, no port lease."""
        gone = _spec(
            image, "sleep 1", image=f"oci:{tmp_path}/nowhere:latest", digest="sha256:" + "0" * 64
        )
        with pytest.raises(ImageUnavailable, match="no OCI layout"):
            await runtime.start(gone)
        assert _runc_ids(runtime) == []
        assert not runtime.leases.exists() or not any(runtime.leases.iterdir())

    async def test_a_bad_digest_never_touches_a_path(
        self, runtime: RuncRuntime, image: BuiltImage
    ) -> None:
        """A digest that is not sha256:hex is refused before it names a cache path."""
        with pytest.raises(ImageUnavailable, match="not an image digest"):
            await runtime.start(_spec(image, "sleep 1", digest="sha256:../../etc"))
        assert not runtime.images.exists() or not any(runtime.images.iterdir())

    async def test_loader_env_refused(self, runtime: RuncRuntime, image: BuiltImage) -> None:
        """LD_PRELOAD from an upload's [env] is refused before anything runs."""
        with pytest.raises(UnsafeEnv, match="LD_PRELOAD"):
            await runtime.start(_spec(image, "sleep 1", env={"LD_PRELOAD": "/app/x.so"}))
        assert _runc_ids(runtime) == []

    async def test_a_command_that_cannot_start(
        self, runtime: RuncRuntime, image: BuiltImage, tmp_path: Path
    ) -> None:
        """No /bin/sh in an image and a command that does not exist: ContainerFailed with
        the log's tail; nothing left."""
        source = tmp_path / "bare"
        source.mkdir()
        (source / "x").write_text("x")
        builder = OciBuilder(BuilderOptions(work_dir=tmp_path / "bare-images", base_images={}))
        bare = await builder.build(
            BuildSpec(app="bare", version="bare-v1", context_dir=source, stack="static"),
            lambda line: None,
        )
        with pytest.raises(ContainerFailed, match="did not start"):
            await runtime.start(_spec(bare, "/no/such/binary", sandbox_id="bare-v1-web-1"))
        assert _runc_ids(runtime) == []


def _as_dict(handle: SandboxHandle) -> dict[str, Any]:
    return {
        "pid": handle.pid,
        "process_start": handle.process_start,
        "log_path": handle.log_path,
        "sandbox_id": handle.sandbox_id,
        "port": handle.port,
    }


def _layered(
    layout: Path,
    base_ref: str,
    tag: str,
    files: dict[str, str],
    config: dict[str, Any] | None = None,
) -> BuiltImage:
    """An image of `base_ref`'s layers plus one layer holding `files` (a name starting
    with `.wh.` is written as an OCI whiteout), written with the layout tools directly into
    `layout` (whose index then names it alone)."""
    import io
    import tarfile

    from sagactl.plugins.builders import ocilayout

    base_dir, base_tag = ocilayout.parse_ref(base_ref)
    base = ocilayout.read_image(base_dir, base_tag)

    def fill(tar: tarfile.TarFile) -> None:
        for name, body in files.items():
            data = body.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))

    writer = ocilayout.LayoutWriter(layout)
    layer = writer.write_layer(fill)
    tagged = ocilayout.write_image(
        layout,
        tag=tag,
        base=base,
        layers=[layer],
        config={**base.config.get("config", {}), **(config or {})},
        history=[{"created_by": "test"}],
    )
    return BuiltImage(f"oci:{layout}:{tag}", tagged.digest)


def _mounted(path: Path) -> bool:
    return os.path.ismount(path)


class TestImageCache:
    async def test_versions_share_their_base_layers_and_unpack_only_new_ones(
        self, runtime: RuncRuntime, tmp_path: Path, busybox_oci: str
    ) -> None:
        """v2 on the same base unpacks one layer (its own), not the base's; both roots are
        read-only overlay mounts of the same base directory; whiteouts hide what a layer
        deleted (a file, and a directory's old content when it is made opaque)."""
        v1 = _layered(tmp_path / "v1", busybox_oci, "v1", {"app/a": "a1", "app/d/old": "old"})
        v2 = _layered(
            tmp_path / "v2",
            v1.ref,
            "v2",
            {"app/.wh.a": "", "app/d/.wh..wh..opq": "", "app/d/new": "new"},
        )
        cache = runtime.cache
        with cache.locked():
            first = cache.unpack(v1.ref, v1.digest)
            second = cache.unpack(v2.ref, v2.digest)
            again = cache.unpack(v2.ref, v2.digest)
        assert (first.new_layers, second.new_layers, again.new_layers) == (2, 1, 0)
        assert (first.rootfs / "app" / "a").read_text() == "a1"
        assert not (second.rootfs / "app" / "a").exists()
        assert sorted(p.name for p in (second.rootfs / "app" / "d").iterdir()) == ["new"]
        assert (first.rootfs / "bin" / "busybox").stat().st_ino == (
            second.rootfs / "bin" / "busybox"
        ).stat().st_ino  # one file on disk for both versions
        assert len(list(cache.layers.iterdir())) == 3 + 1  # base, v1's, v2's + mount points
        with pytest.raises(OSError, match="Read-only"):
            (second.rootfs / "app" / "x").write_text("x")

    async def test_stopping_the_last_sandbox_of_a_version_prunes_its_root(
        self, runtime: RuncRuntime, tmp_path: Path, busybox_oci: str
    ) -> None:
        """v1 stops while v2 (same base) serves: v1's root is unmounted and removed with
        its own layer, the base stays for v2; when v2 stops too, nothing is left. A root
        unmounted behind the runtime's back (a reboot) is mounted again on the next start."""
        v1 = _layered(tmp_path / "v1", busybox_oci, "v1", {"app/index.html": "v1\n"})
        v2 = _layered(tmp_path / "v2", busybox_oci, "v2", {"app/index.html": "v2\n"})
        serve = "exec httpd -f -p 127.0.0.1:$PORT -h /app"
        one = await runtime.start(_spec(v1, serve, sandbox_id="demo-v1-web-1"))
        two = await runtime.start(_spec(v2, serve, sandbox_id="demo-v2-web-1", version="demo-v2"))
        roots = runtime.cache.roots
        v1_root, v2_root = (roots / b.digest.removeprefix("sha256:") for b in (v1, v2))
        assert _mounted(v1_root / "rootfs") and _mounted(v2_root / "rootfs")
        assert len(list(runtime.cache.layers.iterdir())) == 3 + 1

        await runtime.stop(one, grace=2)
        assert not v1_root.exists() and _mounted(v2_root / "rootfs")
        assert len(list(runtime.cache.layers.iterdir())) == 2 + 1
        assert await _fetch(two.port, "/index.html") == b"v2\n"
        await runtime.stop(two, grace=2)
        assert list(roots.iterdir()) == []
        assert [p.name for p in runtime.cache.layers.iterdir()] == [".mountpoints"]

        three = await runtime.start(_spec(v2, serve, sandbox_id="demo-v2-web-2"))
        await anyio.run_process(["umount", "-l", str(v2_root / "rootfs")])
        four = await runtime.start(_spec(v2, serve, sandbox_id="demo-v2-web-3"))
        assert _mounted(v2_root / "rootfs")
        assert await _fetch(four.port, "/index.html") == b"v2\n"
        await runtime.stop(three, grace=2)
        assert _mounted(v2_root / "rootfs")  # web-3 still uses it
        await runtime.stop(four, grace=2)
        assert not v2_root.exists()

    async def test_a_buildah_image_runs_from_a_working_container_of_it(
        self, tmp_path: Path, buildah_storage: dict[str, Path]
    ) -> None:
        """An image in buildah's storage is not exported: its root is a buildah working
        container of it, mounted; stopping its last sandbox removes the container."""
        from sagactl.plugins.builders.buildah import BuildahBuilder

        source = tmp_path / "src"
        source.mkdir()
        (source / "index.html").write_text("from buildah\n")
        (source / "Containerfile").write_text(
            "FROM localhost/sagactl/busybox:latest\nCOPY index.html /app/index.html\n"
        )
        options = BuilderOptions(
            work_dir=tmp_path / "work",
            storage_driver="vfs",
            storage_root=buildah_storage["storage_root"],
            run_root=buildah_storage["run_root"],
            allowed_base_images=frozenset({"localhost/sagactl/busybox:latest"}),
            network="none",
        )
        builder = BuildahBuilder(options)
        built = await builder.build(
            BuildSpec(
                app="bah",
                version="bah-v1",
                context_dir=source,
                stack="dockerfile",
                containerfile=source / "Containerfile",
            ),
            lambda line: None,
        )
        runtime = RuncRuntime(
            RuntimeOptions(
                state_dir=tmp_path / "state",
                buildah_driver="vfs",
                buildah_root=buildah_storage["storage_root"],
                buildah_runroot=buildah_storage["run_root"],
            )
        )

        async def containers() -> list[str]:
            listed = await anyio.run_process(
                [*builder.command, "containers", "--format", "{{.ContainerName}}"]
            )
            return listed.stdout.decode().split()

        # Other tests' sandboxes on this session's store may have left theirs: this one's.
        ours = f"sagactl-root-{built.digest.removeprefix('sha256:')[:32]}"

        serve = "exec httpd -f -p 127.0.0.1:$PORT -h /app"
        handle = await runtime.start(_spec(built, serve, sandbox_id="bah-v1-web-1"))
        assert await _fetch(handle.port, "/index.html") == b"from buildah\n"
        assert ours in await containers()
        await runtime.stop(handle, grace=2)
        assert ours not in await containers()
        assert list(runtime.cache.roots.iterdir()) == []


class TestUser:
    async def test_the_image_user_is_kept_unless_it_is_root(
        self, runtime: RuncRuntime, tmp_path: Path, busybox_oci: str
    ) -> None:
        """An image whose USER is 1000:1000 runs as it; USER root (or none) runs as nobody."""
        show = "mkdir -p /tmp/w; id -u > /tmp/w/uid; exec httpd -f -p 127.0.0.1:$PORT -h /tmp/w"
        for tag, user, expected in (("u", "1000:1000", b"1000\n"), ("r", "root", b"65534\n")):
            image = _layered(tmp_path / tag, busybox_oci, tag, {"app/i": "i"}, {"User": user})
            handle = await runtime.start(_spec(image, show, sandbox_id=f"demo-{tag}-web-1"))
            assert await _fetch(handle.port, "/uid") == expected
            await runtime.stop(handle, grace=2)
