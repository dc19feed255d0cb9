"""build-from-tar end to end through the engine: every stack, failures at every action,
hostile uploads, concurrent builds. Real SQLite, real tar streams, real OCI layouts."""
# ruff: noqa: ASYNC221  (tests inspect real images between awaits)

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from tars import M, make_tar, tar_of_dir

pytest.importorskip("sagactl.engine.api", reason="the engine runtime has not landed yet")

from sagactl.actions.build_from_tar import BuildFailed, records
from sagactl.actions.build_from_tar.entry import build_from_tar_async
from sagactl.actions.build_from_tar.streams import StreamRegistry
from sagactl.engine import InputError, open_store

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACTIONS = [
    "receive_tar",
    "load_config",
    "detect_stack",
    "resolve_cluster_ip",
    "launch_buildkit",
    "get_next_version",
    "build_image",
    "parse_services",
    "create_version",
    "set_active_version",
    "stop_old_sandboxes",
]
SERVE = "web: busybox httpd -f -p $PORT -h .\n"
"""The test apps' web process: a server every test machine has (the stacks' own tools are
the builders' tests); the health gate needs one that really listens."""
STACK_FILES: dict[str, dict[str, str]] = {
    "node": {
        "Procfile": SERVE,
        "package.json": '{"scripts": {"start": "node server.js"}}',
        "server.js": "1",
    },
    "bun": {"Procfile": SERVE, "package.json": "{}", "bunfig.toml": "", "index.ts": "1"},
    "go": {"Procfile": SERVE, "go.mod": "module example.com/app\n", "main.go": "package main\n"},
    "ruby": {
        "Procfile": SERVE,
        "Gemfile": "source 'https://rubygems.org'\n",
        "config.ru": "run ->(e) {}\n",
    },
    "rust": {
        "Procfile": SERVE,
        "Cargo.toml": "[package]\nname = 'app'\n",
        "src/main.rs": "fn main() {}\n",
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class NoSleepClock:
    """A clock whose sleeps return at once (retry backoff without waiting)."""

    def now(self) -> float:
        import time

        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'sagactl.db'}"


async def _build(app: str, data: bytes, deps: Any, db: str, **options: Any) -> Any:
    return await build_from_tar_async(
        app, io.BytesIO(data), deps=deps, db=db, clock=NoSleepClock(), **options
    )


async def _show(db: str, app: str) -> dict[str, Any]:
    async with open_store(db) as store, store.transaction() as tx:
        return await records.show_app(tx, app)


def _staged(settings: Any) -> list[Path]:
    return list(settings.staging_dir.glob("*")) if settings.staging_dir.exists() else []


def _get(url: str, path: str = "/") -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url + path, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _app_dir(tmp_path: Path, stack: str) -> Path:
    root = tmp_path / f"app-{stack}"
    for name, body in STACK_FILES[stack].items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body)
    return root


class TestSuccess:
    @pytest.mark.parametrize("stack", ["python", "static", *STACK_FILES])
    async def test_every_stack(
        self, stack: str, tmp_path: Path, deps: Any, db: str, build_settings: Any
    ) -> None:
        """Each stack builds with the oci builder: v1 active, image readable by skopeo with
        the recorded digest, nothing staged left, the stream forgotten."""
        source = {"python": EXAMPLES / "python-web", "static": EXAMPLES / "static-site"}.get(
            stack
        ) or _app_dir(tmp_path, stack)
        result = await _build(f"app-{stack}", tar_of_dir(source, gz=True), deps, db)
        assert (result.state, result.version) == ("succeeded", f"app-{stack}-v1")
        inspected = subprocess.run(
            ["skopeo", "inspect", result.image], capture_output=True, text=True, check=True
        )
        assert json.loads(inspected.stdout)["Digest"] == result.digest
        shown = await _show(db, f"app-{stack}")
        assert shown["active_version"] == result.version
        assert shown["versions"][0]["digest"] == result.digest
        (sandbox,) = shown["versions"][0]["sandboxes"]
        assert (sandbox["service"], sandbox["state"]) == ("web", "running")
        assert _get(sandbox["url"])[0] in (200, 404)  # its server answers HTTP
        assert _staged(build_settings) == []
        assert len(deps.get(StreamRegistry)) == 0

    async def test_from_a_pipe(self, deps: Any, db: str) -> None:
        """A tar arriving through an OS pipe (written by another thread) builds."""
        data = tar_of_dir(EXAMPLES / "static-site")
        read_fd, write_fd = os.pipe()

        def writer() -> None:
            with os.fdopen(write_fd, "wb") as pipe:
                for i in range(0, len(data), 1000):
                    pipe.write(data[i : i + 1000])

        thread = threading.Thread(target=writer)
        thread.start()
        with os.fdopen(read_fd, "rb") as pipe:
            result = await build_from_tar_async("piped", pipe, deps=deps, db=db)
        thread.join()
        assert result.version == "piped-v1"

    async def test_progress_events(self, deps: Any, db: str) -> None:
        """on_progress receives the upload's byte count and the builder's lines."""
        events: list[Any] = []
        await build_from_tar_async(
            "site",
            io.BytesIO(tar_of_dir(EXAMPLES / "static-site")),
            deps=deps,
            db=db,
            on_progress=events.append,
        )
        progress = [e for e in events if e.kind == "action_progress"]
        assert any(e.action == "receive_tar" and e.data.get("bytes") for e in progress)
        assert any(
            e.action == "build_image" and "oci: wrote" in e.data.get("message", "")
            for e in progress
        )


class TestFailureAtEachAction:
    @pytest.mark.parametrize("action", ACTIONS)
    async def test_fault(self, action: str, deps: Any, db: str, build_settings: Any) -> None:
        """An error at each action (every attempt): before the pivot the run is compensated,
        v1 stays active, v2's records, image and files are gone; after it the run rolls
        forward (stuck with v2 active), and a resume without the fault completes it."""
        data = tar_of_dir(EXAMPLES / "python-web")
        await _build("shop", data, deps, db)
        images = build_settings.state_dir / "images" / "oci"
        before_images = sorted(p.name for p in images.iterdir())
        sources_before = sorted(p.name for p in build_settings.sources_dir.iterdir())
        with pytest.raises(BuildFailed) as info:
            await _build("shop", data, deps, db, faults=f"{action}:error")
        shown = await _show(db, "shop")
        assert _staged(build_settings) == []
        if action == "stop_old_sandboxes":
            assert info.value.result.state == "stuck"
            assert shown["active_version"] == "shop-v2"
            from sagactl.engine.api import Engine

            async with Engine(db, deps=deps, clock=NoSleepClock()) as engine:
                resumed = await engine.resume(info.value.result.run_id)
            assert resumed.state == "succeeded"
            return
        assert info.value.result.state == "compensated"
        assert info.value.result.failed_action == action
        assert shown["active_version"] == "shop-v1"
        assert [v["version"] for v in shown["versions"]] == ["shop-v1"]
        assert sorted(p.name for p in images.iterdir()) == before_images
        assert sorted(p.name for p in build_settings.sources_dir.iterdir()) == sources_before


class TestHostileThroughTheSaga:
    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (make_tar([M("index.html"), M("../escape")]), "'../escape': '..' in path"),
            (make_tar([M("index.html"), M("l", "l", link="../../etc")]), "symlink 'l'"),
            (make_tar([M("index.html"), M("app.toml", data=b"name = [")]), "app.toml:1:"),
            (make_tar([M("index.html"), M("Procfile", data=b"web:\n")]), "Procfile:1:1:"),
            (make_tar([M("README.md")]), "cannot tell the app's stack"),
            (b"not a tar at all" * 64, "not a tar archive"),
        ],
        ids=["traversal", "symlink escape", "bad app.toml", "bad Procfile", "no stack", "junk"],
    )
    async def test_refused(
        self, data: bytes, expected: str, deps: Any, db: str, build_settings: Any
    ) -> None:
        """Bad input fails the build with InputError naming the member or place, nothing
        staged, no version, no unfinished run."""
        with pytest.raises(InputError) as info:
            await _build("bad", data, deps, db)
        assert expected in str(info.value)
        assert _staged(build_settings) == []
        assert (
            not any(build_settings.sources_dir.glob("*"))
            if build_settings.sources_dir.exists()
            else True
        )
        from sagactl.engine.api import Engine

        async with Engine(db, deps=deps) as engine:
            runs = await engine.list_runs()
        assert [r.state for r in runs] == ["compensated"]


class TestConcurrentBuilds:
    async def test_eight_builds_two_apps(self, deps: Any, db: str) -> None:
        """8 builds at once (4 of each of two apps) on one store: versions 1-4 each, no
        collision, the newest active."""
        data = tar_of_dir(EXAMPLES / "static-site")
        results: list[Any] = []

        async def one(app: str) -> None:
            results.append(await _build(app, data, deps, db))

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, "alpha" if i % 2 else "beta")
        for app in ("alpha", "beta"):
            versions = sorted(r.version for r in results if r.app == app)
            assert versions == [f"{app}-v{n}" for n in range(1, 5)]
            shown = await _show(db, app)
            assert shown["active_version"] == f"{app}-v4"
            assert len(shown["versions"]) == 4


@pytest.mark.buildah
@pytest.mark.slow
class TestBuildahThroughTheSaga:
    async def test_dockerfile_app(
        self, deps: Any, db: str, build_settings: Any, buildah_storage: dict[str, Path]
    ) -> None:
        """The dockerfile example builds through the saga with buildah and runs with runc:
        its RUN step's file is in the image, the version records the image and the buildah
        digest, and its own CMD serves /app from the container."""
        from dataclasses import replace

        from sagactl.actions.build_from_tar.settings import BuildSettings

        deps.provide(
            BuildSettings,
            replace(
                build_settings,
                builder="buildah",
                buildah_root=buildah_storage["storage_root"],
                buildah_runroot=buildah_storage["run_root"],
                runtime="runc",
            ),
        )
        result = await _build("docker-app", tar_of_dir(EXAMPLES / "dockerfile-app"), deps, db)
        assert result.image == "localhost/sagactl/docker-app:docker-app-v1"
        from sagactl.plugins.builders.baseimage import buildah_args

        command = buildah_args(
            storage_root=buildah_storage["storage_root"], run_root=buildah_storage["run_root"]
        )
        container = subprocess.run(
            [*command, "from", result.image], capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            mounted = subprocess.run(
                [*command, "mount", container], capture_output=True, text=True, check=True
            ).stdout.strip()
            assert (Path(mounted) / "app" / "BUILD_INFO").read_text().startswith("built at ")
        finally:
            subprocess.run([*command, "rm", container], capture_output=True, check=False)
        shown = await _show(db, "docker-app")
        assert shown["versions"][0]["digest"] == result.digest
        (sandbox,) = shown["versions"][0]["sandboxes"]
        assert sandbox["runtime"] == "runc"
        status, body = _get(sandbox["url"], "/BUILD_INFO")
        assert status == 200 and body.startswith(b"built at ")


class TestResultCarriesTheStream:
    async def test_stream_id_is_carried_not_parsed(self, deps: Any, db: str) -> None:
        """A build's result names its upload (given or made up), and its JSON does too; the
        run id is derived from it, never the other way round."""
        from sagactl.actions.build_from_tar.entry import run_id_for

        data = tar_of_dir(EXAMPLES / "static-site")
        given = await _build("site", data, deps, db, stream_id="upload-0001")
        assert (given.state, given.stream_id) == ("succeeded", "upload-0001")
        assert given.run_id == run_id_for("upload-0001")
        assert given.to_json()["stream_id"] == "upload-0001"
        made = await _build("site", data, deps, db)
        assert made.stream_id not in ("", "upload-0001")
        assert made.run_id == run_id_for(made.stream_id)
