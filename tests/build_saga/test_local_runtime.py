"""The local sandbox runtime: real processes started, found again, stopped (TERM then KILL)."""
# ruff: noqa: ASYNC110, ASYNC240  (tests poll real processes and files)

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import anyio
import pytest
from sagactl.plugins.runtimes.base import RuntimeOptions, SandboxHandle, SandboxSpec
from sagactl.plugins.runtimes.env import UnsafeEnv
from sagactl.plugins.runtimes.local import LocalRuntime, RootRefused, process_start

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def runtime(tmp_path: Path) -> LocalRuntime:
    # Tests run as root here: the opt-in the operator would give (refusal tested below).
    return LocalRuntime(RuntimeOptions(state_dir=tmp_path, allow_root=True))


def _spec(tmp_path: Path, command: str, **changes: object) -> SandboxSpec:
    values: dict[str, object] = {
        "sandbox_id": "sb-1",
        "app": "demo",
        "version": "demo-v1",
        "service": "web",
        "command": command,
        "cwd": tmp_path,
    }
    values.update(changes)
    return SandboxSpec(**values)  # type: ignore[arg-type]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestLocalRuntime:
    async def test_serves_the_example_then_stops(
        self, runtime: LocalRuntime, tmp_path: Path
    ) -> None:
        """The python example runs from its source dir on $PORT, answers HTTP, and stops on
        SIGTERM within the grace period."""
        handle = await runtime.start(
            _spec(
                tmp_path, "python3 app.py", cwd=EXAMPLES / "python-web", port=8080, log_dir=tmp_path
            )
        )
        port = handle.port
        assert port is not None and port != 8080  # allocated, not the declared one
        try:
            body = b""
            with anyio.fail_after(10):
                while not body:
                    try:
                        body = await anyio.to_thread.run_sync(
                            lambda: urllib.request.urlopen(
                                f"http://127.0.0.1:{port}/", timeout=1
                            ).read()
                        )
                    except OSError:
                        await anyio.sleep(0.05)
            assert body == b"hello from demo-v1\n"
            assert await runtime.status(handle) == "running"
            assert os.getpgid(handle.pid) == handle.pid  # leads its own group
        finally:
            assert await runtime.stop(handle, grace=5) is True
        assert await runtime.status(handle) == "exited"
        assert process_start(handle.pid) is None

    @pytest.mark.parametrize(
        "command",
        [
            # The shell and its child ignore SIGTERM: both are SIGKILLed after the grace.
            "trap '' TERM; sleep 60 & touch {marker}; wait",
            # The shell dies of SIGTERM, its child ignores it (and would keep the port).
            "sh -c \"trap '' TERM; exec sleep 60\" & touch {marker}; wait",
        ],
        ids=["all ignore TERM", "a child outlives its shell"],
    )
    async def test_sigkill_after_grace(
        self, runtime: LocalRuntime, tmp_path: Path, command: str
    ) -> None:
        """What SIGTERM leaves of the sandbox's group is SIGKILLed after the grace period,
        and stop() returns once none of the group runs."""
        marker = tmp_path / "ready"
        handle = await runtime.start(_spec(tmp_path, command.format(marker=marker)))
        with anyio.fail_after(5):
            while not marker.exists():
                await anyio.sleep(0.01)
        group = [p for p in os.listdir("/proc") if p.isdigit() and _group(int(p)) == handle.pid]
        assert len(group) >= 2
        with anyio.fail_after(10):
            assert await runtime.stop(handle, grace=0.3) is True
        assert all(_group(int(p)) is None for p in group)

    async def test_env_and_log(self, runtime: LocalRuntime, tmp_path: Path) -> None:
        """The command sees its allocated PORT, its env and SAGACTL_* names; output goes to
        the log file."""
        handle = await runtime.start(
            _spec(
                tmp_path,
                'echo "$PORT $GREETING $SAGACTL_APP $SAGACTL_SERVICE $(pwd)"; sleep 60',
                port=8123,
                env={"GREETING": "hi"},
            )
        )
        assert handle.log_path is not None
        log = Path(handle.log_path)
        with anyio.fail_after(5):
            while not log.read_text():
                await anyio.sleep(0.01)
        assert log.read_text() == f"{handle.port} hi demo web {tmp_path}\n"
        await runtime.stop(handle, grace=1)

    async def test_stop_of_a_gone_process(self, runtime: LocalRuntime, tmp_path: Path) -> None:
        """Stopping a sandbox that already exited returns False; so does a reused pid (its
        start time differs)."""
        handle = await runtime.start(_spec(tmp_path, "sleep 60"))
        impostor = SandboxHandle(handle.pid, "1", handle.log_path)
        assert await runtime.status(impostor) == "exited"
        assert await runtime.stop(impostor) is False
        assert await runtime.status(handle) == "running"
        assert await runtime.stop(handle, grace=1) is True
        assert await runtime.stop(handle, grace=1) is False


class TestLocalRuntimeSafety:
    async def test_refuses_root_without_opt_in(self, tmp_path: Path) -> None:
        """As root, without the operator's opt-in, nothing is started."""
        if os.geteuid() != 0:
            pytest.skip("needs root to check the refusal")
        plain = LocalRuntime(RuntimeOptions(state_dir=tmp_path))
        marker = tmp_path / "ran"
        with pytest.raises(RootRefused, match="SAGACTL_LOCAL_AS_ROOT=1"):
            await plain.start(_spec(tmp_path, f"touch {marker}"))
        await anyio.sleep(0.2)
        assert not marker.exists()

    @pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH", "PATH"])
    async def test_refuses_dangerous_env(
        self, runtime: LocalRuntime, tmp_path: Path, name: str
    ) -> None:
        """Loader variables, and PATH for a host process, from [env] start nothing."""
        marker = tmp_path / "ran"
        with pytest.raises(UnsafeEnv, match=name):
            await runtime.start(_spec(tmp_path, f"touch {marker}", env={name: "/tmp/x"}))
        await anyio.sleep(0.2)
        assert not marker.exists()

    async def test_two_sandboxes_never_share_a_port(
        self, runtime: LocalRuntime, tmp_path: Path
    ) -> None:
        """Each sandbox with a port gets its own; a stopped one's port lease is released."""
        first = await runtime.start(_spec(tmp_path, "sleep 60", sandbox_id="a", port=8080))
        second = await runtime.start(_spec(tmp_path, "sleep 60", sandbox_id="b", port=8080))
        assert None not in (first.port, second.port) and first.port != second.port
        leases = tmp_path / "ports"
        assert {p.name for p in leases.iterdir()} == {str(first.port), str(second.port)}
        await runtime.stop(first, grace=1)
        assert {p.name for p in leases.iterdir()} == {str(second.port)}
        await runtime.stop(second, grace=1)

    async def test_a_repeated_start_replaces_the_leftover(
        self, runtime: LocalRuntime, tmp_path: Path
    ) -> None:
        """A start repeated under the same id (a rerun after a crash) stops what the cut
        short attempt left, and keeps its port."""
        first = await runtime.start(_spec(tmp_path, "sleep 60", port=8080))
        again = await runtime.start(_spec(tmp_path, "sleep 60", port=8080))
        assert process_start(first.pid) is None
        assert await runtime.status(again) == "running"
        assert again.port == first.port
        await runtime.stop(again, grace=1)


def _group(pid: int) -> int | None:
    try:
        if process_start(pid) is None:
            return None
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
