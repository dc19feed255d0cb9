"""Crashes of a real `sagactl build` process (SIGKILL mid-upload, hard exits at chosen points),
then recovery: the run completes or compensates, with exactly one version or none."""
# ruff: noqa: ASYNC220, ASYNC221  (tests drive real processes and files)

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from tars import M, make_tar, tar_of_dir

pytest.importorskip("sagactl.engine.api", reason="the engine runtime has not landed yet")

from sagactl.actions.build_from_tar import BuildSettings, records
from sagactl.engine import Dependencies, open_store
from sagactl.engine.api import Engine

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAGACTL = Path(sys.executable).with_name("sagactl")
CRASH_EXIT = 75


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    return cli_env


def _settings(env: dict[str, str]) -> BuildSettings:
    return BuildSettings.from_env(env)


async def _resume_all(env: dict[str, str]) -> list[Any]:
    """What `sagactl resume --all` does, from this process with the same settings."""
    deps = Dependencies()
    deps.provide(BuildSettings, _settings(env))
    async with Engine(env["SAGACTL_DB"], deps=deps) as engine:
        return await engine.resume_all()


async def _versions(env: dict[str, str], app: str) -> tuple[str | None, list[str]]:
    async with open_store(env["SAGACTL_DB"]) as store, store.transaction() as tx:
        try:
            shown = await records.show_app(tx, app)
        except Exception:
            return None, []
    return shown["active_version"], [v["version"] for v in shown["versions"]]


def _leftovers(env: dict[str, str]) -> list[str]:
    staging = _settings(env).staging_dir
    return sorted(p.name for p in staging.iterdir()) if staging.exists() else []


class TestCrashes:
    @pytest.mark.parametrize(
        "fault",
        [
            "receive_tar:crash@after",
            "build_image:crash@before",
            "build_image:crash@after",
            "create_version:crash@after",
            "set_active_version:crash@before",
            "set_active_version:crash@after",
        ],
    )
    async def test_crash_then_resume_completes(self, fault: str, env: dict[str, str]) -> None:
        """The process dies hard at the fault; resuming (without it) finishes the build with
        exactly one version, active, and nothing staged left."""
        data = tar_of_dir(EXAMPLES / "python-web")
        crashed = subprocess.run(
            [str(SAGACTL), "build", "shop", "-", "--fault", fault],
            input=data,
            env=env,
            capture_output=True,
        )
        assert crashed.returncode == CRASH_EXIT, crashed.stderr.decode()
        assert await _versions(env, "shop") in (
            (None, []),
            (None, ["shop-v1"]),
            ("shop-v1", ["shop-v1"]),
        )
        results = await _resume_all(env)
        assert [r.state for r in results] == ["succeeded"]
        assert await _versions(env, "shop") == ("shop-v1", ["shop-v1"])
        assert _leftovers(env) == []

    async def test_sigkill_during_upload_compensates(self, env: dict[str, str]) -> None:
        """SIGKILL while the upload streams in: the stream is gone and was not staged whole,
        so the resumed run compensates and leaves nothing staged and no version."""
        big = make_tar(
            [M("index.html", data=b"<h1>x</h1>"), M("big.bin", data=os.urandom(8 << 20))]
        )
        process = subprocess.Popen(
            [str(SAGACTL), "build", "site", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert process.stdin is not None
        process.stdin.write(big[: 2 << 20])
        process.stdin.flush()
        staging = _settings(env).staging_dir
        deadline = time.monotonic() + 30
        while not any(staging.glob(".*.partial")) if staging.exists() else True:
            assert time.monotonic() < deadline, "the upload never started staging"
            await anyio.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdin.close()
        results = await _resume_all(env)
        assert [r.state for r in results] == ["compensated"]
        assert "not staged whole" in (results[0].error or "")
        assert _leftovers(env) == []
        assert await _versions(env, "site") == (None, [])
        sources = _settings(env).sources_dir
        assert not sources.exists() or list(sources.iterdir()) == []

    async def test_tampered_staged_file_after_crash(self, env: dict[str, str]) -> None:
        """Crash after staging, then the staged file changes: the resumed run refuses it and
        compensates (no version, nothing left)."""
        crashed = subprocess.run(
            [str(SAGACTL), "build", "site", "-", "--fault", "receive_tar:crash@after"],
            input=tar_of_dir(EXAMPLES / "static-site"),
            env=env,
            capture_output=True,
        )
        assert crashed.returncode == CRASH_EXIT
        staged = [p for p in _settings(env).staging_dir.iterdir() if p.suffix == ".tar"]
        assert len(staged) == 1
        staged[0].write_bytes(make_tar([M("index.html", data=b"evil")]))
        results = await _resume_all(env)
        assert [r.state for r in results] == ["compensated"]
        assert "changed since it was staged" in (results[0].error or "")
        assert _leftovers(env) == []
        assert await _versions(env, "site") == (None, [])
