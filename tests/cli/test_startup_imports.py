"""The commands a user types all day import only what they use: the real CLI, in a
subprocess, reports `sys.modules` as it exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SAGACTL, Cli

pytestmark = pytest.mark.slow

HEAVY = ("networkx", "jsonschema", "rich.live", "structlog", "structlog.dev")
"""The compiler's graph and schema libraries, the live view and the logging set-up: none
of them is needed to print a version or to read runs from the store."""

RUNNING = ("sagactl.engine.api", "sagactl.engine.scheduler", "sagactl.engine.child_runs")
"""What runs a saga: reading one from the store or checking a definition needs none of it."""

EVENT_LOOP = ("asyncio", "anyio")
"""A few SELECTs on a SQLite store need no event loop (`store/sqlite_reader.py`)."""

RICH = ("rich",)
"""Tables that fit are drawn without rich (`cli/tables.py`)."""

PLUGIN_LOADING = ("sagactl.engine.plugins", "sagactl.engine.plugin_cache")
"""Reading runs loads no plugin, nor the list of them (the engine's migrations suffice)."""

PLUGIN_CODE = ("sagactl.actions.", "sagactl.plugins.", "clitest_actions")
"""The modules of action plugins (ours and the test's): their descriptions are cached."""

# The console script, run as `__main__`, with an exit hook writing the modules it imported.
PROBE = """
import atexit, json, runpy, sys
path = sys.argv[1]
def report():
    with open(path, "w") as out:
        json.dump(sorted(sys.modules), out)
atexit.register(report)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def imported(cli: Cli, *args: str) -> set[str]:
    """The modules `sagactl ARGS` imported (it must succeed)."""
    report = cli.tmp / "modules.json"
    report.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), SAGACTL, *args],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = set(json.loads(Path(report).read_text()))
    assert "sagactl.engine.cli" in names, "the report is not the CLI's"
    return names


@pytest.fixture
def run_id(cli: Cli) -> str:
    saga = cli.saga("light", {"a": {}, "b": {"needs": ["a"]}})
    done = cli("run", str(saga))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("list",),
        ("list", "--json"),
        ("logs", "{run}"),
        ("logs", "{run}", "--json"),
        ("status", "{run}"),
        ("status", "{run}", "--json"),
    ],
)
def test_light_commands_import_no_heavy_module(
    cli: Cli, run_id: str, args: tuple[str, ...]
) -> None:
    names = imported(cli, *(arg.format(run=run_id) for arg in args))
    assert sorted(names & {*HEAVY, *RUNNING, *EVENT_LOOP, *RICH, *PLUGIN_LOADING}) == []


def test_status_of_a_child_saga_imports_no_heavy_module(cli: Cli) -> None:
    """A parent's status reads its child's run too, still from the store alone."""
    child = cli.saga("little", {"a": {}})
    parent = child.with_name("parent.yaml")
    parent.write_text(
        "apiVersion: sagactl/v1\nkind: Saga\nmetadata: {name: parent, version: 1}\n"
        "actions:\n  kid: {uses: saga/little, with: {}}\n"
    )
    done = cli("run", str(parent))
    assert done.returncode == 0, done.stderr
    names = imported(cli, "status", done.stdout.strip(), "--json")
    assert sorted(names & {*HEAVY, *RUNNING, *EVENT_LOOP, *RICH, *PLUGIN_LOADING}) == []
    names = imported(cli, "status", done.stdout.strip())
    assert sorted(names & {*HEAVY, *RUNNING, *EVENT_LOOP, *RICH, *PLUGIN_LOADING}) == []
    shown = cli.json("status", done.stdout.strip(), "--json")
    assert shown["actions"]["kid"]["child"]["actions"]["a"]["state"] == "succeeded"


def _no_plugin_code(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.startswith(PLUGIN_CODE))


def test_validate_imports_neither_graph_nor_plugins_nor_engine(cli: Cli) -> None:
    """Once the actions' descriptions are cached (by the first process), `validate` of a
    valid definition loads no plugin module, no networkx (the cycle check is stdlib), no
    jsonschema (the quick checks prove it valid), no logging set-up and nothing that runs
    sagas."""
    saga = cli.saga("checked", {"a": {}, "b": {"needs": ["a"]}})
    for _ in range(2):
        names = imported(cli, "validate", str(saga))
    assert sorted(names & set(HEAVY)) == []
    assert sorted(names & set(RUNNING)) == []
    assert _no_plugin_code(names) == []


def test_the_check_sees_heavy_modules(cli: Cli) -> None:
    """The same check on `run`, which compiles a definition and drives it, does find
    them: the import log is read correctly."""
    saga = cli.saga("heavy", {"a": {}})
    names = imported(cli, "run", str(saga))
    # (not networkx: the scheduler works from the compiled saga's own dependency maps)
    assert {"jsonschema", "sagactl.engine.scheduler", *EVENT_LOOP, *RICH, *PLUGIN_LOADING} <= names
    assert _no_plugin_code(names) != []


def test_version_imports_neither_click_nor_the_engine(cli: Cli) -> None:
    """`--version` alone is answered before the command line is built."""
    names = imported(cli, "--version")
    engine = {n for n in names if n == "click" or n.startswith("sagactl.engine.")}
    assert engine == {"sagactl.engine.cli", "sagactl.engine.lazy_exports"}


def test_no_plugin_command_is_loaded_for_ours(cli: Cli) -> None:
    """`list` imports no other command module of ours and no plugin's command."""
    names = imported(cli, "list")
    assert "sagactl.engine.cli.inspect_commands" in names
    others = {"run_commands", "definition_commands", "worker_command", "plugin_commands"}
    assert not {f"sagactl.engine.cli.{name}" for name in others} & names
    assert not {name for name in names if name.startswith("sagactl.actions.build_from_tar.cli")}
