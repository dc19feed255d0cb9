"""Issue 4's build workload: an example app (plus vendored modules) built by build-from-tar
on the oci builder, through the engine or with its actions called directly.

Needs the build package's entry point, the engine's API and the compiled definition; the
caller skips (with the reason `unavailable()` gives) until they are all on this branch.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

from sagactl.engine import Dependencies

APP_ENV = "SAGACTL_BENCH_APP_MB"
"""Size in MiB of the vendored modules added to the example app (default 16)."""
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "python-web"


def app_padding() -> int:
    return int(os.environ.get(APP_ENV, "16")) << 20


def unavailable() -> str | None:
    """Why the build benchmarks cannot run here, or None when they can."""
    if not EXAMPLE.is_dir():
        return f"no example app at {EXAMPLE}"
    try:
        from sagactl.actions.build_from_tar.entry import build_from_tar_async, load_saga  # noqa: F401
        from sagactl.engine.api import Engine  # noqa: F401
        from sagactl.engine.providers import plugin_provider  # noqa: F401

        load_saga()
    except Exception as exc:  # ImportError, or a definition/plugin that does not load yet
        return f"build-from-tar cannot run on this branch yet: {type(exc).__name__}: {exc}"
    return None


def make_app_tar(path: Path, padding: int) -> int:
    """The python-web example plus `padding` bytes of vendored Python modules (text that
    compresses as real source does); returns the tar's size."""
    line = "def handler_{n}(request):\n    return {{'status': 200, 'body': 'item {n}'}}\n\n"
    per_file = 32 << 10
    with tarfile.open(path, "w") as tar:
        tar.add(EXAMPLE, arcname=".")
        for i in range(padding // per_file):
            text = "".join(line.format(n=i * 1000 + j) for j in range(per_file // len(line)))
            data = text.encode()
            info = tarfile.TarInfo(f"vendor/pkg{i // 50}/mod{i}.py")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path.stat().st_size


def settings_deps(state_dir: Path) -> Dependencies:
    """Dependencies holding this benchmark's build settings: oci builder, files under
    `state_dir`, the cluster host `localhost` (so no DNS timeout is timed)."""
    from sagactl.actions.build_from_tar.cluster import ClusterSettings
    from sagactl.actions.build_from_tar.settings import BuildSettings

    deps = Dependencies()
    deps.provide(
        BuildSettings,
        BuildSettings(
            state_dir=state_dir,
            builder="oci",
            cluster=ClusterSettings(host="localhost"),
            # python-web runs with the host's python3 (no python base image is assumed):
            # the local runtime, opted in for root as an operator would.
            runtime="local",
            local_as_root=True,
        ),
    )
    return deps


def stop_sandboxes(state_dir: Path) -> None:
    """Kills the host processes the builds left serving (the last version of each app)."""
    import json
    import os
    import signal

    from sagactl.plugins.runtimes.local import process_start

    for handle in (state_dir / "sandboxes" / "local").glob("*.json"):
        known = json.loads(handle.read_text())
        if process_start(int(known["pid"])) == str(known["start"]):
            os.killpg(int(known["pid"]), signal.SIGKILL)


class Builds:
    """Builds of one app tar: through `build_from_tar_async`, or its actions called directly."""

    def __init__(self, tar: Path, state_dir: Path, db: Path) -> None:
        from sagactl.actions.build_from_tar.entry import load_saga

        self.tar = tar
        self.state_dir = state_dir
        self.db = f"sqlite:///{db}"
        self.saga = load_saga()
        self.direct_db = db.with_name("direct.sqlite")

    async def with_engine(self, app: str) -> Any:
        """The whole entry point: register the stream, run the saga durably, clean up."""
        from sagactl.actions.build_from_tar.entry import build_from_tar_async

        with self.tar.open("rb") as stream:
            return await build_from_tar_async(
                app,
                stream,
                builder="oci",
                db=self.db,
                deps=settings_deps(self.state_dir),
                saga=self.saga,
            )

    async def direct(self, app: str) -> dict[str, dict[str, Any]]:
        """The same actions' `execute`, in order, without the engine (direct.py)."""
        from sagactl.actions.build_from_tar.entry import run_id_for
        from sagactl.actions.build_from_tar.settings import BuildSettings
        from sagactl.actions.build_from_tar.staging import StagingArea
        from sagactl.actions.build_from_tar.streams import StreamRegistry
        from sagactl.engine.providers import plugin_provider

        from .direct import connect, run_direct

        deps = settings_deps(self.state_dir)
        settings = deps.get(BuildSettings)
        registry = StreamRegistry()
        deps.provide(StreamRegistry, registry)
        provider = plugin_provider(deps)
        actions = {spec.uses: provider.create(spec.uses) for spec in self.saga.actions.values()}
        conn = connect(str(self.direct_db))
        try:
            with self.tar.open("rb") as stream:
                stream_id = registry.register(stream)
                area = StagingArea(settings.staging_dir, settings.limits)
                registry.on_cleanup(stream_id, lambda sid, _outcome: area.remove(sid))
                try:
                    return await run_direct(
                        self.saga,
                        actions,
                        {"app": app, "stream_id": stream_id},
                        run_id=run_id_for(stream_id),
                        deps=deps,
                        conn=conn,
                    )
                finally:
                    registry.release(stream_id, "succeeded")
        finally:
            conn.close()
