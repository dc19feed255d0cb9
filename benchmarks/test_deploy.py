"""Issue 15: deploys with the runc runtime. During a redeploy, the old version's URL then
the new one's are polled: the window with neither serving (target: none) and the time from
the new version healthy to the old one stopped. And a container's start to healthy against
the same command started as a host process (local runtime), as a ratio.

    .venv/bin/pytest benchmarks/test_deploy.py --benchmark-enable -s
"""

from __future__ import annotations

import asyncio
import http.client
import io
import re
import statistics
import tarfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .pairing import paired

SERVE = "exec httpd -f -p 127.0.0.1:$PORT -h /app"
URL = re.compile(r"healthy at (http://127\.0\.0\.1:\d+)")


def _usable() -> str | None:
    try:
        from sagactl.plugins.runtimes.runc import runc_usable
    except ImportError as exc:
        return f"no runc runtime on this branch: {exc}"
    return runc_usable()


@pytest.fixture
def deploy_env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    reason = _usable()
    if reason is not None:
        pytest.skip(reason)
    from sagactl.actions.build_from_tar.cluster import ClusterSettings
    from sagactl.actions.build_from_tar.settings import BuildSettings
    from sagactl.plugins.builders.baseimage import make_oci_base

    base = make_oci_base(tmp_path / "busybox")
    settings = BuildSettings(
        state_dir=tmp_path / "state",
        builder="oci",
        cluster=ClusterSettings(host="localhost"),
        base_images={"static": base},
        runtime="runc",
        stop_grace=2.0,
    )
    yield {"settings": settings, "db": f"sqlite:///{tmp_path / 'db.sqlite'}", "base": base}
    import subprocess

    root = settings.runtime_options().state_dir / "runc"
    listed = subprocess.run(["runc", "--root", str(root), "list", "-q"], capture_output=True)
    for container in listed.stdout.decode().split():
        subprocess.run(["runc", "--root", str(root), "delete", "--force", container])


def _tar(body: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("index.html", body), ("Procfile", f"web: {SERVE}\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data.encode())
            tar.addfile(info, io.BytesIO(data.encode()))
    return buffer.getvalue()


def _answers(url: str | None) -> bool:
    if url is None:
        return False
    try:
        with urllib.request.urlopen(url + "/index.html", timeout=1) as answer:
            return answer.status == 200
    except (OSError, http.client.HTTPException):  # refused, or cut off by a stop
        return False


class Watch:
    """Polls the old URL, then (when the old one fails) the new one, and notes when each
    answered; the new URL comes from start_sandboxes' progress event."""

    def __init__(self, old: str) -> None:
        self.old = old
        self.new: str | None = None
        self.healthy_at: float | None = None
        self.samples: list[tuple[float, bool, bool]] = []
        self.done = False

    def on_event(self, event: Any) -> None:
        found = URL.search(str(event.data.get("message") or ""))
        if event.action == "start_sandboxes" and found:
            self.new, self.healthy_at = found[1], time.monotonic()

    def run(self) -> None:
        while not self.done:
            now = time.monotonic()
            old_ok = _answers(self.old)
            new_ok = not old_ok and _answers(self.new)
            self.samples.append((now, old_ok, new_ok))
            time.sleep(0.002)

    def gap(self) -> float:
        """The longest stretch of samples in which neither version answered."""
        longest, since = 0.0, None
        for at, old_ok, new_ok in self.samples:
            if old_ok or new_ok:
                if since is not None:
                    longest = max(longest, at - since)
                since = None
            elif since is None:
                since = at
        return longest

    def old_stopped_after_healthy(self) -> float:
        assert self.healthy_at is not None
        stopped = next(at for at, old_ok, _ in self.samples if at > self.healthy_at and not old_ok)
        return stopped - self.healthy_at


class TestDeploy:
    def test_redeploy_window(
        self, benchmark: Any, deploy_env: dict[str, Any], runner: asyncio.Runner
    ) -> None:
        """Redeploys of a busybox-httpd app: the old version serves until the new one is
        healthy and active, with no window in which neither answers."""
        from sagactl.actions.build_from_tar import records
        from sagactl.actions.build_from_tar.entry import build_from_tar_async
        from sagactl.actions.build_from_tar.settings import BuildSettings
        from sagactl.engine import Dependencies, open_store

        def deps() -> Dependencies:
            container = Dependencies()
            container.provide(BuildSettings, deploy_env["settings"])
            return container

        async def build(body: str, watch: Watch | None = None) -> Any:
            return await build_from_tar_async(
                "bench-deploy",
                io.BytesIO(_tar(body)),
                deps=deps(),
                db=deploy_env["db"],
                on_progress=watch.on_event if watch else None,
            )

        async def serving_url() -> str:
            async with open_store(deploy_env["db"]) as store, store.transaction() as tx:
                running = await records.running_sandboxes(tx, "bench-deploy")
            (sandbox,) = running
            assert sandbox.url is not None
            return sandbox.url

        runner.run(build("v0"))
        gaps: list[float] = []
        switches: list[float] = []

        def redeploy() -> None:
            watch = Watch(runner.run(serving_url()))
            poller = threading.Thread(target=watch.run)
            poller.start()
            try:
                runner.run(build(f"round {len(gaps)}", watch))
                time.sleep(0.2)
            finally:
                watch.done = True
                poller.join()
            gaps.append(watch.gap())
            switches.append(watch.old_stopped_after_healthy())

        benchmark.pedantic(redeploy, rounds=5)
        benchmark.extra_info.update(
            key="redeploy",
            units=1,
            max_gap_seconds=max(gaps),
            healthy_to_old_stopped_median=statistics.median(switches),
        )
        print(
            f"\nredeploy: longest window with neither serving {max(gaps) * 1000:.1f} ms "
            f"over {len(gaps)} redeploys; healthy -> old stopped, median "
            f"{statistics.median(switches) * 1000:.0f} ms"
        )
        assert max(gaps) == 0.0

    def test_container_start_vs_host_process(
        self, benchmark: Any, deploy_env: dict[str, Any], runner: asyncio.Runner, tmp_path: Path
    ) -> None:
        """busybox httpd in a runc sandbox (image already unpacked), from start to healthy
        and stopped, against the same command as a host process (local runtime)."""
        from sagactl.actions.build_from_tar.health import wait_healthy
        from sagactl.plugins.builders.base import BuilderOptions, BuildSpec
        from sagactl.plugins.builders.oci import OciBuilder
        from sagactl.plugins.runtimes.base import RuntimeOptions, SandboxSpec
        from sagactl.plugins.runtimes.local import LocalRuntime
        from sagactl.plugins.runtimes.runc import RuncRuntime

        source = tmp_path / "src"
        source.mkdir()
        (source / "index.html").write_text("hi\n")
        builder = OciBuilder(
            BuilderOptions(work_dir=tmp_path / "images", base_images={"static": deploy_env["base"]})
        )
        built = runner.run(
            builder.build(
                BuildSpec(
                    app="b",
                    version="b-v1",
                    context_dir=source,
                    stack="static",
                ),
                lambda line: None,
            )
        )
        options = RuntimeOptions(state_dir=tmp_path / "rt", grace=2, allow_root=True)
        containers, processes = RuncRuntime(options), LocalRuntime(options)
        count = [0]

        def spec(command: str) -> SandboxSpec:
            count[0] += 1
            return SandboxSpec(
                sandbox_id=f"b-v1-web-{count[0]}",
                app="b",
                version="b-v1",
                service="web",
                command=command,
                cwd=source,
                port=8080,
                image=built.ref,
                digest=built.digest,
            )

        async def start_healthy(runtime: Any, command: str) -> None:
            handle = await runtime.start(spec(command))
            await wait_healthy(runtime, handle, what="bench", path="/index.html")
            await runtime.stop(handle, grace=2)

        command = "exec busybox httpd -f -p 127.0.0.1:$PORT -h {root}"
        in_container, on_host = command.format(root="/app"), command.format(root=source)
        runner.run(start_healthy(containers, in_container))  # unpack the image once, untimed
        paired(
            benchmark,
            lambda: runner.run(start_healthy(containers, in_container)),
            lambda: runner.run(start_healthy(processes, on_host)),
            key="sandbox_runc_start_healthy_stop",
            units=1,
            baseline_key="sandbox_local_start_healthy_stop",
            baseline_units=1,
            rounds=10,
        )
