"""The entry-point scan is cached per environment, and a real `pip install` or
`pip uninstall` in that environment makes the next process scan again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PluginEnv

pytestmark = pytest.mark.slow

PROBE_COMMAND = """
import click


@click.command()
def probe() -> None:
    click.echo("probe installed")
"""


def _distribution(root: Path) -> Path:
    """`cache-probe-plugin`: one `sagactl.commands` entry point, `cache-probe`."""
    (root / "cache_probe").mkdir(parents=True)
    (root / "cache_probe" / "__init__.py").write_text(PROBE_COMMAND)
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "cache-probe-plugin"\nversion = "0.1.0"\n'
        '[project.entry-points."sagactl.commands"]\n"cache-probe" = "cache_probe:probe"\n'
        '[tool.setuptools]\npackages = ["cache_probe"]\n'
    )
    return root


def _pip(plugin_env: PluginEnv, *args: str) -> None:
    python = plugin_env.venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_cache_is_used_and_invalidated_by_installs(plugin_env: PluginEnv, tmp_path: Path) -> None:
    env = {**plugin_env.env(dup=False), "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def sagactl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(plugin_env.venv / "bin" / "sagactl"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert sagactl("acme-hello", "bob").stdout == "hello bob from acme\n"
    (cache,) = (tmp_path / "cache" / "sagactl").glob("entry-points-*.json")
    data = json.loads(cache.read_text())
    assert ["sagactl.commands", "acme-hello", "acme_saga.cli:hello"] in [
        row[:3] for row in data["entry_points"]
    ]

    # The next process reads the cache, not the installed metadata: a command taken out of
    # the cache is gone although its distribution is still installed.
    data["entry_points"] = [row for row in data["entry_points"] if row[1] != "acme-hello"]
    cache.write_text(json.dumps(data))
    gone = sagactl("acme-hello", "bob")
    assert gone.returncode == 2 and "No such command 'acme-hello'" in gone.stderr

    probe = _distribution(tmp_path / "cache-probe-plugin")
    try:
        _pip(plugin_env, "install", "-q", "--no-deps", str(probe))
        # Installing changed the fingerprint: rescanned, both the new command and the one
        # taken out of the stale cache are found.
        assert sagactl("cache-probe").stdout == "probe installed\n"
        assert sagactl("acme-hello", "bob").stdout == "hello bob from acme\n"
    finally:
        _pip(plugin_env, "uninstall", "-q", "-y", "cache-probe-plugin")
    removed = sagactl("cache-probe")
    assert removed.returncode == 2 and "No such command 'cache-probe'" in removed.stderr
