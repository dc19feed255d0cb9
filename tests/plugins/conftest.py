"""A throwaway venv with sagactl and the test plugin distributions really pip-installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTS = ROOT / "tests" / "plugin_dists"
PROBE = Path(__file__).with_name("probe_plugins.py")


@dataclass(frozen=True)
class PluginEnv:
    """sagactl, acme-saga-plugin and acme-broken-plugin installed in `venv`; acme-dup-plugin
    installed apart in `dup`, on the path only when a test asks for the clash."""

    venv: Path
    dup: Path

    def env(self, *, dup: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["COLUMNS"] = "200"
        if dup:
            env["PYTHONPATH"] = str(self.dup)
        return env

    def sagactl(
        self, *args: str, dup: bool = False, stdout: Any = subprocess.PIPE
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "sagactl"), *args],
            env=self.env(dup=dup),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )

    def probe(self, *args: str, dup: bool = False) -> dict[str, Any]:
        """Runs probe_plugins.py in the venv and returns what it printed."""
        done = subprocess.run(
            [str(self.venv / "bin" / "python"), str(PROBE), *args],
            env=self.env(dup=dup),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def _pip(python: Path, *args: str | Path) -> None:
    # The test run's own pip, pointed at the venv: the venv needs no pip of its own.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", *args],
        check=True,
        timeout=300,
    )


def _share_dependencies(python: Path) -> None:
    """Appends the running environment's site-packages to the venv's path."""
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site_packages, "_sagactl_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))


def _copy_project(target: Path) -> Path:
    """The project's sources without tests, venvs or build leftovers, so that pip builds
    outside the worktree."""
    skip_top = {".git", ".venv", "build", "dist", "tests", "benchmarks", ".hypothesis"}

    def ignore(folder: str, names: Sequence[str]) -> set[str]:
        ignored = {n for n in names if n == "__pycache__" or n.endswith((".egg-info", "_cache"))}
        if Path(folder) == ROOT:
            ignored |= skip_top & set(names)
        return ignored

    shutil.copytree(ROOT, target, ignore=ignore)
    return target


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> PluginEnv:
    base = tmp_path_factory.mktemp("plugin-env")
    environment = base / "venv"
    # Never the base interpreter's site-packages: a venv made from inside .venv is based on
    # the base interpreter, which may hold anything or nothing. sagactl's dependencies come
    # from the running environment instead, appended after the venv's own site-packages by
    # a .pth file, so the venv's own sagactl and plugins win (entry points are deduplicated
    # by distribution name, first on the path first).
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(environment)
    python = environment / "bin" / "python"
    _share_dependencies(python)
    project = _copy_project(base / "sagactl")
    # The plugins are built from a copy too: setuptools builds in the source folder, and two
    # test workers building the same folder at once trip over each other's build/ files.
    dists = Path(shutil.copytree(DISTS, base / "plugin_dists"))
    _pip(python, project, dists / "acme-saga-plugin", dists / "acme-broken-plugin")
    dup = base / "dup"
    _pip(python, "--target", dup, dists / "acme-dup-plugin")
    return PluginEnv(environment, dup)
