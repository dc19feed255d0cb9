"""`sagactl validate`, `schema` and `graph`, run as the installed command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

SAGACTL = str(Path(sys.executable).parent / "sagactl")

# A real (if hand-installed) distribution: a module plus a dist-info with entry points.
PLUGIN = '''
"""Test actions for the sagactl CLI tests."""
from sagactl.engine import Action


class Echo(Action):
    input_schema = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    }
    output_schema = {"type": "object", "properties": {"text": {"type": "string"}}}

    async def execute(self, ctx, inputs):
        return {"text": inputs["text"]}

    async def compensate(self, ctx, inputs, outputs):
        return None


class Count(Action):
    input_schema = {
        "type": "object",
        "properties": {"start": {"type": "integer"}},
        "required": ["start"],
    }
    output_schema = {"type": "object", "properties": {"count": {"type": "integer"}}}

    async def execute(self, ctx, inputs):
        return {"count": inputs["start"] + 1}


def echo_factory(deps):
    return Echo()


def count_factory(deps):
    return Count()
'''

GOOD = """\
apiVersion: sagactl/v1
kind: Saga
metadata: {name: hello}
inputs: {who: {type: string}}
actions:
  greet: {uses: clitest.echo, with: {text: "hello ${{ inputs.who }}"}}
  count: {uses: clitest.count, with: {start: 1}, needs: [greet]}
"""

BAD = """\
apiVersion: sagactl/v1
kind: Saga
metadata: {name: broken}
actions:
  greet: {uses: clitest.echo, wiht: {text: hi}}
  count: {uses: clitest.count, with: {start: one}}
  loop: {uses: clitest.echo, needs: [loop2], with: {text: "${{ actions.loop2.outputs.text }}"}}
  loop2: {uses: clitest.echo, with: {text: "${{ actions.loop.outputs.text }}"}}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a shell where the `sagactl-cli-test` plugin distribution is installed."""
    site = tmp_path_factory.mktemp("site")
    (site / "sagactl_cli_testactions.py").write_text(PLUGIN)
    info = site / "sagactl_cli_test-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sagactl-cli-test\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[sagactl.actions]\n"
        "clitest.echo = sagactl_cli_testactions:echo_factory\n"
        "clitest.count = sagactl_cli_testactions:count_factory\n"
    )
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(site), *filter(None, [environment.get("PYTHONPATH")])]
    )
    return environment


def _run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [SAGACTL, *args], env=env, cwd=cwd, capture_output=True, timeout=60, check=False
    )
    assert b"Traceback" not in result.stderr
    return result


def _file(tmp_path: Path, text: str, name: str = "saga.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


class TestValidate:
    def test_valid(self, env, tmp_path: Path) -> None:
        """A valid file exits 0 and says so on stdout, with nothing on stderr."""
        path = _file(tmp_path, GOOD)
        result = _run(env, "validate", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().startswith(f"{path}: ok (hello, 2 actions, ")
        assert result.stderr == b""

    def test_errors(self, env, tmp_path: Path) -> None:
        """Each problem is one `file:line:column: message` line on stderr; exit 2."""
        path = _file(tmp_path, BAD)
        result = _run(env, "validate", str(path))
        assert result.returncode == 2
        assert result.stdout == b""
        assert result.stderr.decode().splitlines() == [
            f"{path}:5:31: actions.greet: unknown key 'wiht' (did you mean 'with'?)",
            f"{path}:6:46: actions.count.with.start: expected an integer, got 'one' (a string)",
            f"{path}:7:3: actions: dependency cycle: loop -> loop2 -> loop "
            "(each action waits for the one before it)",
        ]

    def test_loader_error(self, env, tmp_path: Path) -> None:
        """A hostile file is refused with its location, not parsed."""
        path = _file(tmp_path, "a: !!python/object/apply:os.system ['touch pwned']\n")
        result = _run(env, "validate", str(path), cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.decode() == (
            f"{path}:1:4: YAML tags (!!python/object/apply:os.system) are not allowed\n"
        )
        assert not (tmp_path / "pwned").exists()

    def test_several_arguments(self, env, tmp_path: Path) -> None:
        """Every argument is checked; one bad one makes the exit 2, the good ones still say ok."""
        good = _file(tmp_path, GOOD, "good.yaml")
        result = _run(env, "validate", str(good), "no-such-saga", str(tmp_path / "gone.yaml"))
        assert result.returncode == 2
        assert result.stdout.decode().startswith(f"{good}: ok")
        lines = result.stderr.decode().splitlines()
        assert lines[0].startswith("no-such-saga: no saga named 'no-such-saga' (installed: ")
        assert lines[1] == f"{tmp_path / 'gone.yaml'}: no such file"

    def test_by_name(self, env) -> None:
        """A shipped definition is found by name; without build actions it names them unknown."""
        result = _run(env, "validate", "build-from-tar")
        stderr = result.stderr.decode()
        if result.returncode == 0:
            assert result.stdout.decode().startswith("build-from-tar: ok (build-from-tar, 12 ")
        else:
            assert result.returncode == 2
            assert "build-from-tar.yaml:34:11: actions.receive_tar.uses: unknown action" in stderr

    def test_no_arguments(self, env) -> None:
        """Without arguments it is a usage error (exit 2)."""
        result = _run(env, "validate")
        assert result.returncode == 2
        assert b"Missing argument" in result.stderr


class TestSchema:
    def test_folds_installed_actions(self, env, tmp_path: Path) -> None:
        """The printed schema is valid, lists the installed actions and checks their `with:`."""
        result = _run(env, "schema")
        assert result.returncode == 0
        schema = json.loads(result.stdout)
        Draft202012Validator.check_schema(schema)
        uses = schema["$defs"]["action"]["properties"]["uses"]["anyOf"][0]["enum"]
        assert {"clitest.echo", "clitest.count"} <= set(uses)
        validator = Draft202012Validator(schema)
        good = yaml.safe_load(GOOD)
        assert list(validator.iter_errors(good)) == []
        good["actions"]["count"]["with"]["start"] = "one"
        assert [list(e.absolute_path) for e in validator.iter_errors(good)] == [
            ["actions", "count", "with", "start"]
        ]

    def test_output_file(self, env, tmp_path: Path) -> None:
        """-o writes the same schema to a file."""
        target = tmp_path / "saga.schema.json"
        assert _run(env, "schema", "-o", str(target)).returncode == 0
        assert json.loads(target.read_text()) == json.loads(_run(env, "schema").stdout)


class TestGraph:
    def test_bad_definition(self, env, tmp_path: Path) -> None:
        """graph of a broken definition: exit 2, the errors with locations, no drawing."""
        path = _file(tmp_path, BAD)
        result = _run(env, "graph", str(path), "--format", "json")
        assert result.returncode == 2
        assert result.stdout == b""
        assert result.stderr.decode().splitlines()[0] == (
            f"error: {path}:5:31: actions.greet: unknown key 'wiht' (did you mean 'with'?)"
        )

    def test_unknown_format(self, env, tmp_path: Path) -> None:
        """An unknown format is a usage error listing the formats."""
        result = _run(env, "graph", str(_file(tmp_path, GOOD)), "--format", "gif")
        assert result.returncode == 2
        assert b"'gif' is not one of 'text', 'mermaid', 'dot', 'json', 'svg', 'png'" in (
            result.stderr
        )

    @pytest.mark.skipif(
        find_spec("sagactl.engine.render") is None, reason="the renderers are not merged yet"
    )
    def test_json_edges(self, env, tmp_path: Path) -> None:
        """The JSON graph has the compiled nodes and dependency edges."""
        result = _run(env, "graph", str(_file(tmp_path, GOOD)), "--format", "json")
        assert result.returncode == 0, result.stderr
        drawing = json.loads(result.stdout)
        assert {node["id"] for node in drawing["nodes"]} == {"greet", "count"}
        assert [(e["source"], e["target"]) for e in drawing["edges"]] == [("greet", "count")]


class TestConditions:
    CONDITIONAL = """\
    apiVersion: sagactl/v1
    kind: Saga
    metadata: {name: gated}
    inputs: {env: {type: string}}
    actions:
      count: {uses: clitest.count, with: {start: 1}}
      greet:
        uses: clitest.echo
        if: ${{ inputs.env == "prod" && actions.count.outputs.count > 1 }}
        with: {text: hi}
      typo: {uses: clitest.echo, if: "${{ actions.count.outputs.count == 'two' }}", with: {text: x}}
      sloppy: {uses: clitest.echo, if: "${{ inputs.env = 'x' }}", with: {text: x}}
    """

    def test_validate_reports_condition_mistakes(self, env, tmp_path: Path) -> None:
        """`validate` reports a type mismatch and a parse error in `if`, each at its column."""
        path = _file(tmp_path, self.CONDITIONAL)
        result = _run(env, "validate", str(path))
        assert result.returncode == 2 and result.stdout == b""
        assert result.stderr.decode().splitlines() == [
            f"{path}:11:67: actions.typo.if: cannot compare actions.count.outputs.count with "
            "'two': one is an integer, the other a string",
            f"{path}:12:52: actions.sloppy.if: unexpected '=': use == to compare",
        ]

    def test_graph_labels_conditional_actions(self, env, tmp_path: Path) -> None:
        """Every drawing marks a conditional action with its condition; the condition's
        reference is an edge."""
        lines = self.CONDITIONAL.splitlines()
        path = _file(tmp_path, "\n".join(lines[:10]) + "\n")
        text = _run(env, "graph", str(path)).stdout.decode()
        row = next(line for line in text.splitlines() if line.startswith("  greet "))
        assert row.split()[:2] == ["greet", "clitest.echo"]
        assert row.endswith('[if inputs.env == "prod" && actions.count.outputs.count > 1]  ← count')
        dot = _run(env, "graph", str(path), "--format", "dot").stdout.decode()
        assert '\\nif inputs.env == \\"prod\\" && actions.count.outputs.count > 1"' in dot
        assert '"count" -> "greet";' in dot
        mermaid = _run(env, "graph", str(path), "--format", "mermaid").stdout.decode()
        assert "<br/>if inputs.env == #quot;prod#quot; #amp;#amp; actions.count" in mermaid
        data = json.loads(_run(env, "graph", str(path), "--format", "json").stdout)
        nodes = {node["id"]: node for node in data["nodes"]}
        assert nodes["greet"]["if"].startswith('${{ inputs.env == "prod"')
        assert "if" not in nodes["count"]

    def test_schema_covers_if(self, env) -> None:
        """The printed schema accepts a `${{ }}` condition and refuses anything else."""
        schema = json.loads(_run(env, "schema").stdout)
        validator = Draft202012Validator(schema)
        saga = yaml.safe_load(GOOD)
        saga["actions"]["count"]["if"] = "${{ inputs.who != 'x' }}"
        assert list(validator.iter_errors(saga)) == []
        for bad in ("inputs.who != 'x'", True, "${{ a }} and more"):
            saga["actions"]["count"]["if"] = bad
            errors = list(validator.iter_errors(saga))
            assert [list(e.absolute_path) for e in errors] == [["actions", "count", "if"]], bad
