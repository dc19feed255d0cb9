"""Deploys through the sagas with the runc runtime: real images, containers and HTTP.

The new version starts beside the serving one and goes live only once healthy; a version
that fails its health check is undone while the old one serves every request; rollback
brings an earlier version back; a build killed while its sandboxes start resumes with no
orphaned container."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from tars import tar_of_dir

pytest.importorskip("sagactl.engine.api", reason="the engine runtime has not landed yet")

from sagactl.actions.build_from_tar import BuildFailed, records
from sagactl.actions.build_from_tar.entry import build_from_tar_async
from sagactl.actions.build_from_tar.rollback import rollback_async
from sagactl.actions.build_from_tar.settings import BuildSettings
from sagactl.engine import open_store
from sagactl.plugins.runtimes.runc import runc_usable

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(runc_usable() is not None, reason=f"runc unusable: {runc_usable()}"),
]
SERVE = "web: exec httpd -f -p 127.0.0.1:$PORT -h /app\n"
HEALTH_500 = (
    '#!/bin/sh\necho "Status: 500 Internal Server Error"\necho "Content-Type: text/plain"\n'
    "echo\necho failing\n"
)
SERVE_NOTING_PID = "web: echo $$ > /tmp/main.pid; exec httpd -f -p 127.0.0.1:$PORT -h /app\n"
AFTER_STOP = (
    "#!/bin/sh\n# Answers only once the server's main process is gone (the stop reached it).\n"
    "main=$(cat /tmp/main.pid); i=0\n"
    'while [ -e "/proc/$main" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done\n'
    'echo "Content-Type: text/plain"; echo; echo "answered after the stop"\n'
)
SAGACTL = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "sagactl")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def runc_deps(deps: Any, build_settings: BuildSettings) -> Any:
    deps.provide(
        BuildSettings,
        replace(build_settings, runtime="runc", health_timeout=3.0, stop_grace=2.0),
    )
    return deps


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'sagactl.db'}"


def _app(root: Path, name: str, body: str, procfile: str = SERVE, toml: str = "") -> Path:
    source = root / name
    (source / "cgi-bin").mkdir(parents=True)
    (source / "index.html").write_text(body)
    (source / "Procfile").write_text(procfile)
    health = source / "cgi-bin" / "health"
    health.write_text(HEALTH_500)
    health.chmod(0o755)
    if toml:
        (source / "app.toml").write_text(toml)
    return source


async def _build(app: str, source: Path, deps: Any, db: str) -> Any:
    return await build_from_tar_async(app, io.BytesIO(tar_of_dir(source)), deps=deps, db=db)


async def _show(db: str, app: str) -> dict[str, Any]:
    async with open_store(db) as store, store.transaction() as tx:
        return await records.show_app(tx, app)


def _running(shown: dict[str, Any], version: str) -> list[dict[str, Any]]:
    found = next(v for v in shown["versions"] if v["version"] == version)
    return [s for s in found["sandboxes"] if s["state"] == "running"]


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            body: bytes = answer.read()
            return body
    except (OSError, http.client.HTTPException):  # refused, or cut off by a stop
        return None


def _containers(settings: BuildSettings) -> list[str]:
    root = settings.runtime_options().state_dir / "runc"
    listed = subprocess.run(
        ["runc", "--root", str(root), "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(c["id"] for c in json.loads(listed.stdout or "null") or [])


class Poller:
    """Fetches a URL again and again in a thread, counting answers and failures."""

    def __init__(self, url: str, expected: bytes) -> None:
        self.url, self.expected = url, expected
        self.ok = 0
        self.failed: list[bytes | None] = []
        self.stopping = False
        self.answering = threading.Event()
        """Set after three answers (or a failure): the URL is being polled."""

    def run(self) -> None:
        while not self.stopping:
            body = _get(self.url)
            if body == self.expected:
                self.ok += 1
            else:
                self.failed.append(body)
            if self.ok >= 3 or self.failed:
                self.answering.set()
            time.sleep(0.01)


class TestHealthGate:
    @pytest.mark.parametrize(
        ("case", "procfile", "toml", "error"),
        [
            ("exits at once", "web: exit 3\n", "", "exited"),
            ("never listens", "web: exec sleep 600\n", "", "not healthy after 3s"),
            (
                "health path 500",
                SERVE,
                '[services.web]\nhealth = "/cgi-bin/health"\n',
                "answered 500",
            ),
        ],
    )
    async def test_bad_version_undone_while_the_old_serves(
        self,
        runc_deps: Any,
        db: str,
        tmp_path: Path,
        case: str,
        procfile: str,
        toml: str,
        error: str,
    ) -> None:
        """v2 fails its health check: the build fails at start_sandboxes, v2's sandbox,
        version and image are gone, and v1 stays active and answers every request."""
        settings = runc_deps.get(BuildSettings)
        v1 = await _build("gate", _app(tmp_path, "v1", "v1\n"), runc_deps, db)
        (serving,) = _running(await _show(db, "gate"), v1.version)
        poller = Poller(serving["url"] + "/index.html", b"v1\n")
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, poller.run)
            await anyio.to_thread.run_sync(poller.answering.wait, 30)  # before v2 begins
            before_v2 = poller.ok
            with pytest.raises(BuildFailed) as failed:
                await _build("gate", _app(tmp_path, "v2", "v2\n", procfile, toml), runc_deps, db)
            after_v2 = poller.ok
            poller.stopping = True
        assert failed.value.result.failed_action == "start_sandboxes"
        assert error in str(failed.value)
        # v1 answered all along, during v2's build too (however fast v2 failed).
        assert poller.failed == [], (case, poller.failed[:3])
        assert after_v2 > before_v2 >= 3, (case, before_v2, after_v2)
        shown = await _show(db, "gate")
        assert shown["active_version"] == "gate-v1"
        assert [v["version"] for v in shown["versions"]] == ["gate-v1"]
        assert not (settings.state_dir / "images" / "oci" / "gate-v2").exists()
        assert _containers(settings) == [serving["id"]]
        assert _get(serving["url"] + "/index.html") == b"v1\n"


class TestRedeployAndRollback:
    async def test_redeploy_then_rollback(self, runc_deps: Any, db: str, tmp_path: Path) -> None:
        """v2 replaces v1 with no request lost (v1 answers until v2 is live, on another
        port); rolling back to v1 while v2 serves starts v1 again and stops v2."""
        settings = runc_deps.get(BuildSettings)
        v1 = await _build("roll", _app(tmp_path, "v1", "v1\n"), runc_deps, db)
        (first,) = _running(await _show(db, "roll"), v1.version)
        poller = Poller(first["url"] + "/index.html", b"v1\n")
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, poller.run)
            v2 = await _build("roll", _app(tmp_path, "v2", "v2\n"), runc_deps, db)
            poller.stopping = True
        shown = await _show(db, "roll")
        (second,) = _running(shown, v2.version)
        assert second["url"] != first["url"]
        assert _get(second["url"] + "/index.html") == b"v2\n"
        # v1 answered every request until it was stopped after the pivot.
        assert poller.ok > 0 and all(body is None for body in poller.failed)
        assert _running(shown, v1.version) == []
        assert _containers(settings) == [second["id"]]

        assert await rollback_async("roll", db=db, deps=runc_deps) == "roll-v1"
        shown = await _show(db, "roll")
        assert shown["active_version"] == "roll-v1"
        (back,) = _running(shown, "roll-v1")
        assert _get(back["url"] + "/index.html") == b"v1\n"
        assert _running(shown, "roll-v2") == []
        assert _get(second["url"] + "/index.html") is None
        assert _containers(settings) == [back["id"]]

        v3 = await _build("roll", _app(tmp_path, "v3", "v3\n"), runc_deps, db)
        shown = await _show(db, "roll")
        assert shown["active_version"] == v3.version == "roll-v3"
        (third,) = _running(shown, "roll-v3")
        assert _get(third["url"] + "/index.html") == b"v3\n"
        assert _containers(settings) == [third["id"]]


class TestDraining:
    async def test_a_request_in_flight_completes_when_the_old_version_stops(
        self, runc_deps: Any, db: str, tmp_path: Path
    ) -> None:
        """A request to v1 is in flight when v2 goes live and v1 is stopped (SIGTERM): its
        handler answers only once v1's server process is gone, and the answer still
        arrives, since the container's PID 1 waits for it within the grace period."""
        v1_source = _app(tmp_path, "v1", "v1\n", SERVE_NOTING_PID)
        slow = v1_source / "cgi-bin" / "slow"
        slow.write_text(AFTER_STOP)
        slow.chmod(0o755)
        v1 = await _build("drain", v1_source, runc_deps, db)
        (old,) = _running(await _show(db, "drain"), v1.version)
        answers: list[bytes | None] = []

        def in_flight() -> None:
            answers.append(_get_slowly(old["url"] + "/cgi-bin/slow"))

        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, in_flight)
            await anyio.sleep(0.5)  # the request reaches v1's handler, which waits
            assert answers == []
            v2 = await _build("drain", _app(tmp_path, "v2", "v2\n"), runc_deps, db)
        assert answers == [b"answered after the stop\n"]
        shown = await _show(db, "drain")
        assert shown["active_version"] == v2.version
        assert _running(shown, v1.version) == []


def _get_slowly(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            body: bytes = answer.read()
            return body
    except (OSError, http.client.HTTPException):
        return None


@pytest.mark.slow
class TestCrashWhileStarting:
    def test_sigkill_of_build_while_sandboxes_start_then_resume(
        self, cli_env: dict[str, str], tmp_path: Path
    ) -> None:
        """`sagactl build` is SIGKILLed while v2's container is starting (it listens only
        after 2 s); `sagactl resume --all` then finishes the build: one v2 container,
        none of the killed attempt's left, exactly one active version, serving."""
        env = {**cli_env, "SAGACTL_RUNTIME": "runc", "SAGACTL_HEALTH_TIMEOUT": "20"}
        runc_root = Path(env["SAGACTL_BUILD_DIR"]) / "sandboxes" / "runc"

        def containers() -> list[str]:
            listed = subprocess.run(
                ["runc", "--root", str(runc_root), "list", "-q"], capture_output=True, text=True
            )
            return sorted(listed.stdout.split())

        def sagactl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [SAGACTL, *args], input=data, env=env, capture_output=True, timeout=120
            )

        v1 = _app(tmp_path, "v1", "v1\n")
        assert sagactl("build", "crash", "-", "-q", data=tar_of_dir(v1)).returncode == 0
        slow = _app(
            tmp_path, "v2", "v2\n", "web: sleep 2; exec httpd -f -p 127.0.0.1:$PORT -h /app\n"
        )
        build = subprocess.Popen(
            [SAGACTL, "build", "crash", "-", "-q"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert build.stdin is not None
        build.stdin.write(tar_of_dir(slow))
        build.stdin.close()
        deadline = time.monotonic() + 60
        while not any(c.startswith("crash-v2-") for c in containers()):
            assert time.monotonic() < deadline and build.poll() is None
            time.sleep(0.02)
        os.kill(build.pid, signal.SIGKILL)
        build.wait()
        orphan = [c for c in containers() if c.startswith("crash-v2-")]
        assert len(orphan) == 1  # the killed attempt's container, not recorded anywhere

        resumed = sagactl("resume", "--all")
        assert resumed.returncode == 0, resumed.stderr.decode()
        shown = json.loads(sagactl("app", "show", "crash", "--json").stdout)
        assert shown["active_version"] == "crash-v2"
        (serving,) = _running(shown, "crash-v2")
        assert _running(shown, "crash-v1") == []
        assert containers() == [serving["id"]]  # the orphan was replaced, not left beside
        assert _get(serving["url"] + "/index.html") == b"v2\n"


@pytest.mark.slow
class TestConcurrentDeploys:
    async def test_eight_builds_of_two_apps(self, runc_deps: Any, db: str, tmp_path: Path) -> None:
        """Eight builds of two apps at once, one of each app's failing its health check:
        each app ends with its highest good version active and the only one serving."""
        settings = runc_deps.get(BuildSettings)
        outcomes: dict[str, list[Any]] = {"alpha": [], "beta": []}

        async def one(app: str, i: int) -> None:
            procfile = "web: exit 1\n" if i == 2 else SERVE
            source = _app(tmp_path / app, f"src{i}", f"{app} {i}\n", procfile)
            try:
                outcomes[app].append(await _build(app, source, runc_deps, db))
            except BuildFailed as exc:
                outcomes[app].append(exc.result)

        async with anyio.create_task_group() as group:
            for i in range(4):
                for app in outcomes:
                    group.start_soon(one, app, i)
        serving = []
        for app, results in outcomes.items():
            good = [r for r in results if r.state == "succeeded"]
            assert len(good) == 3 and len(results) == 4
            shown = await _show(db, app)
            highest = max(good, key=lambda r: records.version_number(r.version)).version
            assert shown["active_version"] == highest
            (sandbox,) = [
                s for v in shown["versions"] for s in v["sandboxes"] if s["state"] == "running"
            ]
            assert sandbox["version"] == highest
            body = _get(sandbox["url"] + "/index.html")
            assert body is not None and body.startswith(app.encode())
            serving.append(sandbox["id"])
        assert _containers(settings) == sorted(serving)
