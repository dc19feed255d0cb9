"""The build actions called directly (a stand-in context over real SQLite, real files, real
builds and processes): effects, compensations, recovery from the staged file."""
# ruff: noqa: ASYNC240  (tests check real files between awaits)

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from conftest import StandInContext
from sagactl.actions.build_from_tar import records
from sagactl.actions.build_from_tar.settings import BuildSettings
from sagactl.actions.build_from_tar.steps.cluster import ResolveClusterIp
from sagactl.actions.build_from_tar.steps.image import BuildImage, LaunchBuildkit
from sagactl.actions.build_from_tar.steps.receive import ReceiveTar
from sagactl.actions.build_from_tar.steps.sandboxes import StartSandboxes, StopOldSandboxes
from sagactl.actions.build_from_tar.steps.source import DetectStack, LoadConfig, ParseServices
from sagactl.actions.build_from_tar.steps.versions import (
    CreateVersion,
    GetNextVersion,
    SetActiveVersion,
)
from sagactl.actions.build_from_tar.streams import StreamRegistry
from sagactl.engine import FatalError, InputError
from tars import M, make_tar, tar_of_dir

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _ctx(sqlite_db: Any, deps: Any, action: str = "a") -> StandInContext:
    return StandInContext(sqlite_db, deps, action=action)


async def _build(ctx_of: Any, deps: Any, app: str, data: bytes) -> dict[str, Any]:
    """Every action of the saga in dependency order; returns all outputs by action."""
    registry = deps.get(StreamRegistry)
    stream_id = registry.register(io.BytesIO(data))
    out: dict[str, Any] = {}
    out["receive_tar"] = await ReceiveTar().execute(ctx_of("receive_tar"), {"stream_id": stream_id})
    src = out["receive_tar"]["source_dir"]
    out["load_config"] = await LoadConfig().execute(ctx_of("load_config"), {"source_dir": src})
    config = out["load_config"]["config"]
    out["detect_stack"] = await DetectStack().execute(
        ctx_of("detect_stack"), {"source_dir": src, "config": config}
    )
    app_stack = out["detect_stack"]["stack"]
    out["resolve_cluster_ip"] = await ResolveClusterIp().execute(ctx_of("resolve"), {})
    out["launch_buildkit"] = await LaunchBuildkit().execute(ctx_of("launch"), {})
    out["get_next_version"] = await GetNextVersion().execute(ctx_of("next"), {"app": app})
    version = out["get_next_version"]
    out["parse_services"] = await ParseServices().execute(
        ctx_of("parse"), {"source_dir": src, "config": config}
    )
    out["build_image"] = await BuildImage().execute(
        ctx_of("build_image"),
        {
            "app": app,
            "source_dir": src,
            "stack": app_stack,
            "config": config,
            "version": version["version"],
            "builder": out["launch_buildkit"]["builder"],
            "endpoint": out["launch_buildkit"]["endpoint"],
            "cluster_ip": out["resolve_cluster_ip"]["ip"],
            "services": out["parse_services"]["services"],
        },
    )
    out["create_version"] = await CreateVersion().execute(
        ctx_of("create_version"),
        {
            "app": app,
            **version,
            **out["build_image"],
            "source_dir": src,
        },
    )
    out["start_sandboxes"] = await StartSandboxes().execute(
        ctx_of("start_sandboxes"),
        {
            "app": app,
            "version": version["version"],
            "image": out["build_image"]["image"],
            "digest": out["build_image"]["digest"],
            "services": out["build_image"]["services"],
            "source_dir": src,
        },
    )
    out["set_active_version"] = await SetActiveVersion().execute(
        ctx_of("set_active"), {"app": app, "version": version["version"]}
    )
    out["stop_old_sandboxes"] = await StopOldSandboxes().execute(
        ctx_of("stop_old"), {"app": app, "version": version["version"]}
    )
    return out


class TestReceiveTar:
    async def test_stages_checkpoints_and_unpacks(
        self, sqlite_db: Any, deps: Any, build_settings: BuildSettings
    ) -> None:
        """Outputs path, digest, size and source dir; the checkpoint records size and digest;
        compensation removes the staged file and the source dir."""
        data = tar_of_dir(EXAMPLES / "python-web", gz=True)
        stream_id = deps.get(StreamRegistry).register(io.BytesIO(data))
        ctx = _ctx(sqlite_db, deps)
        out = await ReceiveTar().execute(ctx, {"stream_id": stream_id})
        assert ctx.pinned  # the staged tar is on this machine: so is the run
        assert out["size"] == len(data)
        assert Path(out["path"]).read_bytes() == data
        assert ctx.checkpoints == [{"staged": True, "sha256": out["sha256"], "size": len(data)}]
        assert (Path(out["source_dir"]) / "Procfile").is_file()
        assert ctx.events[-1] == (1.0, "upload staged and unpacked", len(data))
        await ReceiveTar().compensate(ctx, {"stream_id": stream_id}, out)
        assert not Path(out["path"]).exists()
        assert not Path(out["source_dir"]).exists()

    async def test_finalize_removes_the_staged_file_and_keeps_the_source(
        self, sqlite_db: Any, deps: Any
    ) -> None:
        """Once the run is over the staged tar goes; versions still run from the source dir.
        A second call (a finalize rerun after a crash) finds nothing to do and succeeds."""
        stream_id = deps.get(StreamRegistry).register(io.BytesIO(make_tar([M("index.html")])))
        ctx = _ctx(sqlite_db, deps)
        out = await ReceiveTar().execute(ctx, {"stream_id": stream_id})
        assert ReceiveTar.finalizes()
        await ReceiveTar().finalize(ctx, {"stream_id": stream_id})
        assert not Path(out["path"]).exists()
        assert (Path(out["source_dir"]) / "index.html").is_file()
        await ReceiveTar().finalize(ctx, {"stream_id": stream_id})

    async def test_recovers_from_the_staged_file(self, sqlite_db: Any, deps: Any) -> None:
        """A rerun after a crash, reader gone, succeeds from the staged file (same outputs)."""
        stream_id = deps.get(StreamRegistry).register(io.BytesIO(make_tar([M("index.html")])))
        first = _ctx(sqlite_db, deps)
        out = await ReceiveTar().execute(first, {"stream_id": stream_id})
        again = await ReceiveTar().execute(first.rerun(), {"stream_id": stream_id})
        assert again == out

    async def test_tampered_staged_file_refused(self, sqlite_db: Any, deps: Any) -> None:
        """A staged file that changed since its checkpoint is refused and removed."""
        stream_id = deps.get(StreamRegistry).register(io.BytesIO(make_tar([M("index.html")])))
        first = _ctx(sqlite_db, deps)
        out = await ReceiveTar().execute(first, {"stream_id": stream_id})
        Path(out["path"]).write_bytes(make_tar([M("evil.html")]))
        with pytest.raises(FatalError, match="missing or changed since it was staged"):
            await ReceiveTar().execute(first.rerun(), {"stream_id": stream_id})
        assert not Path(out["path"]).exists()

    async def test_stream_gone_before_staged(
        self, sqlite_db: Any, deps: Any, build_settings: BuildSettings
    ) -> None:
        """No live reader and no checkpoint: a clear error, nothing staged."""
        with pytest.raises(FatalError, match="is gone and was not staged whole"):
            await ReceiveTar().execute(_ctx(sqlite_db, deps), {"stream_id": "never-registered"})
        assert not any(build_settings.staging_dir.glob("*"))

    async def test_hostile_upload(
        self, sqlite_db: Any, deps: Any, build_settings: BuildSettings
    ) -> None:
        """A hostile tar is an InputError naming the member; nothing staged or unpacked."""
        stream_id = deps.get(StreamRegistry).register(io.BytesIO(make_tar([M("../../x")])))
        with pytest.raises(InputError, match=r"'\.\./\.\./x'"):
            await ReceiveTar().execute(_ctx(sqlite_db, deps), {"stream_id": stream_id})
        assert not any(build_settings.staging_dir.glob("*"))
        assert not any(build_settings.sources_dir.glob("*"))  # nothing unpacked, no partial


class TestWholeBuildDirect:
    async def test_two_builds_activate_and_stop_old_sandbox(
        self, sqlite_db: Any, deps: Any
    ) -> None:
        """python-web built twice with the oci builder: v1 then v2 active; v1's real sandbox
        (started from its unpacked source before the pivot) is stopped by v2's
        stop_old_sandboxes, while v2's runs on another port."""

        def ctx_of(name: str) -> StandInContext:
            return _ctx(sqlite_db, deps, name)

        data = tar_of_dir(EXAMPLES / "python-web")
        first = await _build(ctx_of, deps, "python-web", data)
        assert first["detect_stack"]["stack"] == "python"
        assert first["get_next_version"]["version"] == "python-web-v1"
        assert first["build_image"]["image"].startswith("oci:")
        assert first["parse_services"]["services"]["web"]["command"] == "python3 app.py"
        assert first["set_active_version"] == {
            "previous_version": None,
            "active_version": "python-web-v1",
            "activated": True,
        }
        (started,) = first["start_sandboxes"]["sandboxes"]
        assert started["service"] == "web" and started["url"].startswith("http://127.0.0.1:")
        second = await _build(ctx_of, deps, "python-web", data)
        assert second["set_active_version"] == {
            "previous_version": "python-web-v1",
            "active_version": "python-web-v2",
            "activated": True,
        }
        assert second["stop_old_sandboxes"] == {"stopped": [started["id"]]}
        (serving,) = second["start_sandboxes"]["sandboxes"]
        assert serving["url"] != started["url"]
        async with sqlite_db.transaction() as tx:
            shown = await records.show_app(tx, "python-web")
        assert shown["active_version"] == "python-web-v2"
        v1 = next(v for v in shown["versions"] if v["version"] == "python-web-v1")
        assert v1["sandboxes"][0]["state"] == "stopped"
        from sagactl.plugins.runtimes.local import process_start

        assert process_start(v1["sandboxes"][0]["pid"] or 0) is None
        v2 = next(v for v in shown["versions"] if v["version"] == "python-web-v2")
        assert process_start(v2["sandboxes"][0]["pid"]) is not None
        await StopOldSandboxes().execute(
            ctx_of("stop"), {"app": "python-web", "version": "python-web-v1", "others": True}
        )


class TestCompensations:
    async def test_version_records_undone(self, sqlite_db: Any, deps: Any) -> None:
        """create_version's compensation deletes it; set_active_version's restores the previous
        active version; build_image's removes the image only once no version uses it."""

        def ctx_of(name: str) -> StandInContext:
            return _ctx(sqlite_db, deps, name)

        data = tar_of_dir(EXAMPLES / "static-site")
        await _build(ctx_of, deps, "site", data)
        second = await _build(ctx_of, deps, "site", data)
        image = second["build_image"]["image"]
        build_inputs = {"builder": "oci"}
        await BuildImage().compensate(ctx_of("b"), build_inputs, second["build_image"])
        layout = Path(image.removeprefix("oci:").rsplit(":", 1)[0])
        assert layout.is_dir(), "kept: site-v2 still uses it"
        inputs = {"app": "site", "version": "site-v2"}
        await SetActiveVersion().compensate(ctx_of("s"), inputs, second["set_active_version"])
        await CreateVersion().compensate(ctx_of("c"), inputs, second["create_version"])
        async with sqlite_db.transaction() as tx:
            assert await records.get_version(tx, "site-v2") is not None, "it still runs"
        await StartSandboxes().compensate(ctx_of("st"), inputs, second["start_sandboxes"])
        await CreateVersion().compensate(ctx_of("c"), inputs, second["create_version"])
        await BuildImage().compensate(ctx_of("b"), build_inputs, second["build_image"])
        assert not layout.exists()
        async with sqlite_db.transaction() as tx:
            shown = await records.show_app(tx, "site")
        assert shown["active_version"] == "site-v1"
        assert [v["version"] for v in shown["versions"]] == ["site-v1"]
