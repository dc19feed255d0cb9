"""Conditions seen from the real `sagactl`: `status` says what was skipped and why, and
`graph --run` colours the skipped actions."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .conftest import Cli


def _gated(cli: Cli) -> Path:
    """`gated` runs only for env=prod; `user` uses its outputs; `after` only needs it."""
    append = {"uses": "clitest.append"}
    file = "${{ inputs.file }}"
    body = {
        "apiVersion": "sagactl/v1",
        "kind": "Saga",
        "metadata": {"name": "gated"},
        "inputs": {
            "file": {"type": "string", "default": str(cli.out)},
            "env": {"type": "string"},
        },
        "actions": {
            "gated": {
                **append,
                "if": "${{ inputs.env == 'prod' }}",
                "with": {"file": file, "name": "gated"},
            },
            "user": {
                **append,
                "with": {"file": file, "name": "${{ actions.gated.outputs.name }}-user"},
            },
            "after": {**append, "needs": ["gated"], "with": {"file": file, "name": "after"}},
        },
    }
    path = cli.tmp / "gated.yaml"
    path.write_text(json.dumps(body, indent=2))
    return path


def test_status_shows_what_was_skipped_and_why(cli: Cli) -> None:
    done = cli("run", str(_gated(cli)), "--input", "env=dev")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    assert cli.lines() == ["start:after", "after"]
    # The live view says why, as each skip happens.
    assert f"{run_id} gated skipped (condition is false: ${{{{ inputs.env == 'prod' }}}})" in (
        done.stderr.splitlines()
    )
    table = cli("status", run_id).stdout
    assert re.search(
        r"gated\s+│?\s*skipped\s+│?\s*0\s+│?\s*condition is false: \$\{\{ inputs", table
    )
    assert re.search(
        r"user\s+│?\s*skipped\s+│?\s*0\s+│?\s*it uses outputs of 'gated', skipped", table
    )
    status = cli.json("status", run_id, "--json")
    assert status["state"] == "succeeded"
    assert {name: a["state"] for name, a in status["actions"].items()} == {
        "gated": "skipped",
        "user": "skipped",
        "after": "succeeded",
    }
    assert status["actions"]["user"]["reason"] == "it uses outputs of 'gated', skipped"


def test_graph_run_colours_skipped_actions(cli: Cli) -> None:
    run_id = cli("run", str(_gated(cli)), "--input", "env=dev").stdout.strip()
    text = cli("graph", "--run", run_id).stdout
    assert re.search(r"\bgated\s+skipped\s+clitest.append\s+.*\[if inputs.env == 'prod'\]", text)
    dot = cli("graph", "--run", run_id, "--format", "dot").stdout
    assert re.search(
        r'"gated" \[label="[^"]*if inputs.env == \'prod\'\\n\[skipped\]", fillcolor="#dee2e6"', dot
    )
    assert re.search(r'"after" \[label="[^"]*\[succeeded\]", fillcolor="#d1e7dd"', dot)
    mermaid = cli("graph", "--run", run_id, "--format", "mermaid").stdout
    assert "classDef state_skipped fill:#dee2e6" in mermaid
    assert "class gated,user state_skipped" in mermaid
