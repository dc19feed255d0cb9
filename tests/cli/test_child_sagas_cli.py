"""Child sagas from the real `sagactl`: validate, run, status and graph nested, list --parent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .conftest import Cli, on_terminal


def write(cli: Cli, name: str, body: dict[str, Any]) -> Path:
    path = cli.tmp / f"{name}.yaml"
    document = {"apiVersion": "sagactl/v1", "kind": "Saga", "metadata": {"name": name}, **body}
    path.write_text(json.dumps(document, indent=2))  # JSON is YAML
    return path


def where(path: Path, text: str) -> str:
    """`file:line:col` of the first `text` in the file."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return f"{path}:{number}:{line.index(text) + 1}"
    raise AssertionError(f"{text!r} not in {path}")


def append(cli: Cli, name: str, **extra: Any) -> dict[str, Any]:
    return {"uses": "clitest.append", "with": {"file": str(cli.out), "name": name, **extra}}


def family(cli: Cli, *, fail_after: bool = False) -> Path:
    """parent: p1, then the child (c1, c2), then p2 (failing when asked)."""
    write(
        cli,
        "kid",
        {
            "inputs": {"tag": {"type": "string"}},
            "actions": {"c1": append(cli, "c1"), "c2": {**append(cli, "c2"), "needs": ["c1"]}},
            "outputs": {"tag": "${{ inputs.tag }}", "last": "${{ actions.c2.outputs.name }}"},
        },
    )
    return write(
        cli,
        "family",
        {
            "actions": {
                "p1": append(cli, "p1"),
                "kid": {
                    "uses": "saga/kid",
                    "with": {"tag": "${{ actions.p1.outputs.name }}"},
                },
                "p2": {**append(cli, "p2", fail=fail_after), "needs": ["kid"]},
            },
            "outputs": {"from_kid": "${{ actions.kid.outputs.last }}"},
        },
    )


def test_validate_reports_child_mistakes_with_locations(cli: Cli) -> None:
    family(cli)
    loop = write(cli, "loop", {"actions": {"again": {"uses": "saga/loop"}}})
    bad = write(
        cli,
        "bad",
        {
            "actions": {
                "a": {"uses": "saga/kid", "with": {"tag": 3}},
                "b": {"uses": "saga/nokid"},
            },
            "outputs": {"x": "${{ actions.a.outputs.nope }}"},
        },
    )
    done = cli("validate", str(loop), str(bad))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    loop_at, tag_at = where(loop, '"saga/loop"'), where(bad, "3")
    nokid_at, ref_at = where(bad, '"saga/nokid"'), where(bad, '"${{')
    assert lines == [
        f"{loop_at}: actions.again.uses: recursive child saga: loop -> loop",
        f"{tag_at}: actions.a.with.tag: expected a string, got 3 (a number)"
        ' (quote it, "3", if you meant the string)',
        f"{nokid_at}: actions.b.uses: unknown saga 'nokid' (did you mean 'kid'?)",
        f"{ref_at}: outputs.x: action 'a' (saga/kid) has no output 'nope' (its outputs: last, tag)",
    ]
    assert "Traceback" not in done.stderr


def test_run_status_graph_and_list_parent(cli: Cli) -> None:
    done = cli("run", str(family(cli)), "--run-id", "fam")
    assert done.returncode == 0, done.stderr
    assert cli.lines() == ["start:p1", "p1", "start:c1", "c1", "start:c2", "c2", "start:p2", "p2"]
    status = cli.json("status", "fam", "--json")
    assert status["outputs"] == {"from_kid": "c2"}
    child = status["actions"]["kid"]["child"]
    assert child["run_id"] == "fam/kid" and child["parent"] == {"run_id": "fam", "action": "kid"}
    assert child["outputs"] == {"tag": "p1", "last": "c2"}
    text = cli("status", "fam").stdout
    assert "run fam/kid" in text and "    c2" in text and 'outputs: {"from_kid": "c2"}' in text
    own = cli("status", "fam/kid").stdout
    assert "child of run fam (action kid)" in own
    listed = cli.json("list", "--parent", "fam", "--json")
    assert [(r["run_id"], r["parent"]) for r in listed] == [("fam/kid", "fam")]
    assert cli.json("list", "--parent", "kid", "--json") == []
    graph = cli("graph", "--run", "fam", "--format", "text").stdout
    assert "child saga kid v1:" in graph and "c2  succeeded  clitest.append" in graph
    drawn = cli.json("graph", "--run", "fam", "--format", "json")
    kid = next(n for n in drawn["nodes"] if n["id"] == "kid")
    assert [(n["id"], n["state"]) for n in kid["child"]["nodes"]] == [
        ("c1", "succeeded"),
        ("c2", "succeeded"),
    ]
    dot = cli("graph", "--run", "fam", "--format", "dot").stdout
    assert 'subgraph "cluster_kid"' in dot and '"kid/c1" -> "kid/c2";' in dot


def test_parent_failure_undoes_the_child_in_reverse(cli: Cli) -> None:
    done = cli("run", str(family(cli, fail_after=True)), "--run-id", "fam")
    assert done.returncode == 1
    undone = [line for line in cli.lines() if line.startswith("undo")]
    assert undone == [
        "undo-start:c2",
        "undo:c2",
        "undo-start:c1",
        "undo:c1",
        "undo-start:p1",
        "undo:p1",
    ]
    assert cli.json("status", "fam/kid", "--json")["state"] == "compensated"


def test_schema_covers_outputs_and_installed_child_sagas(cli: Cli) -> None:
    schema = cli.json("schema")
    assert schema["properties"]["outputs"]["type"] == "object"
    action = schema["$defs"]["action"]
    assert "saga/build-from-tar" in action["properties"]["uses"]["anyOf"][0]["enum"]
    rule = next(
        r
        for r in action["allOf"]
        if r["if"]["properties"]["uses"]["const"] == "saga/build-from-tar"
    )
    with_schema = rule["then"]["properties"]["with"]
    assert set(with_schema["required"]) == {"app", "stream_id"}


def test_live_view_shows_the_child_actions_under_the_parent_action(cli: Cli) -> None:
    """On a terminal, a child's actions get lines of their own: `kid/c1`, `kid/c2`."""
    screen = on_terminal(["run", str(family(cli)), "--run-id", "fam"], cli.env, timeout=60)
    assert screen.code == 0
    final = screen.lines()
    for line in ("kid/c1", "kid/c2", "kid", "p1", "p2"):
        assert any(re.match(rf"^{line}\s+succeeded\s+━+", shown) for shown in final), line
