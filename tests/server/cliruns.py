"""Runs of small sagas made by the real CLI in a server's store (the CLI tests' action,
`clitest.append`): a stuck run to retry and a run whose condition skipped an action.

A server that is to drive these runs (retry) needs `plugin_env()`: the action installed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from servetools import SAGACTL, TESTS, Server

PLUGIN = TESTS / "cli" / "plugin"


def plugin_env() -> dict[str, str]:
    return {"PYTHONPATH": str(PLUGIN)}


def _saga(server: Server, name: str, actions: dict[str, dict[str, Any]]) -> Path:
    """A definition of clitest.append actions; `pivot`/`needs`/`if` are action keys."""
    out = server.root / f"{name}.out"
    body: dict[str, Any] = {
        "apiVersion": "sagactl/v1",
        "kind": "Saga",
        "metadata": {"name": name, "version": 1},
        "inputs": {"flag": {"type": "boolean", "default": False}},
        "defaults": {"retry": {"attempts": 1}},
        "actions": {
            action: {
                "uses": "clitest.append",
                "with": {"file": str(out), "name": action},
                **spec,
            }
            for action, spec in actions.items()
        },
    }
    path = server.root / f"{name}.yaml"
    path.write_text(json.dumps(body))  # JSON is YAML
    return path


def cli_run(server: Server, path: Path, run_id: str, *args: str) -> None:
    """`sagactl run` on the server's store; the run ends as it ends (no exit code checked
    but a crash's)."""
    done = subprocess.run(
        [SAGACTL, "run", "-q", str(path), "--run-id", run_id, *args],
        env={**server.env, **plugin_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr


def stuck_run(server: Server, run_id: str) -> str:
    """c fails after the pivot b (a fault given to the CLI only): the run is stuck; a
    retry without the fault succeeds."""
    path = _saga(
        server,
        "sticky",
        {"a": {}, "b": {"needs": ["a"], "pivot": True}, "c": {"needs": ["b"]}},
    )
    cli_run(server, path, run_id, "--fault", "c:error")
    return run_id


def skipping_run(server: Server, run_id: str) -> str:
    """`gated` has a false condition and `after` uses its outputs: both skipped, with
    their reasons; `plain` runs."""
    path = _saga(
        server,
        "skipper",
        {
            "plain": {},
            "gated": {"if": "${{ inputs.flag }}"},
            "after": {"with": {"file": "${{ actions.gated.outputs.name }}", "name": "after"}},
        },
    )
    cli_run(server, path, run_id)
    return run_id
