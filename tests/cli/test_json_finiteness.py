"""Issue 10 item 11: every value that enters the store is finite JSON, refused at the edge.

The edges: the YAML loader (file:line:col), `--input` (the input's name), the Python API
(the input's name), an action's outputs and checkpoints (the action's name); the stores
encode with allow_nan=False as the last guard.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga, Engine, Inputs, Outputs
from sagactl.engine.errors import DefinitionError, InputError
from sagactl.engine.json_values import INT_MAX, INT_MIN, NotJson, check_json, parse_json
from sagactl.engine.store import NewRun, open_store
from sagactl.engine.yaml_loader import load_yaml_text

from .conftest import Cli

HUGE = "9" * 5000
NESTED = "[" * 30_000 + "]" * 30_000  # one argument may hold 128 KiB


class TestYaml:
    @pytest.mark.parametrize(
        ("text", "column", "says"),
        [
            ("1e999", 4, "'1e999' is beyond the range of a JSON number"),
            ("-1e999", 4, "'-1e999' is beyond the range"),
            ("1.5e400", 4, "beyond the range"),
            (HUGE, 4, "integer with 5000 digits is out of range (64-bit)"),
            (str(INT_MAX + 1), 4, "out of range"),
            (".inf", 4, "not a JSON number"),
            (".nan", 4, "not a JSON number"),
        ],
    )
    def test_refused_with_its_location(self, text: str, column: int, says: str) -> None:
        """Overflowing floats and out-of-range integers are one error at line:column,
        like `.inf` always was."""
        with pytest.raises(DefinitionError) as caught:
            load_yaml_text(f"a: 1\nb: {text}\n", file="s.yaml")
        assert caught.value.location is not None
        assert (caught.value.location.line, caught.value.location.column) == (2, column)
        assert says in caught.value.message
        assert len(str(caught.value)) < 200

    def test_the_range_ends_are_kept(self) -> None:
        """Both ends of the 64-bit range, tiny and huge finite floats load as they are."""
        doc = load_yaml_text(f"a: {INT_MAX}\nb: {INT_MIN}\nc: 1e-999\nd: 1.7e308\ne: '1e999'\n")
        assert doc.data == {"a": INT_MAX, "b": INT_MIN, "c": 0.0, "d": 1.7e308, "e": "1e999"}

    def test_validate_reports_it(self, cli: Cli) -> None:
        """`sagactl validate` prints the one line and exits 2."""
        path = cli.tmp / "s.yaml"
        path.write_text(
            "apiVersion: sagactl/v1\nkind: Saga\n"
            f"metadata: {{name: s, version: {HUGE}}}\n"
            "actions:\n  a: {uses: clitest.append, with: {file: f, name: a}}\n"
        )
        done = cli("validate", str(path))
        assert done.returncode == 2
        [line] = done.stderr.splitlines()
        assert line.startswith(f"{path}:3:30: 9999") and line.endswith("out of range (64-bit)")


def _typed(cli: Cli) -> str:
    return str(cli.saga("typed", {"a": {}}, x={"type": "number"}, y={}, z={"type": "array"}))


class TestInputOption:
    @pytest.mark.parametrize(
        ("pair", "says"),
        [
            ("x=NaN", "--input x: NaN is not a JSON number"),
            ("x=1e999", "--input x: 1e999 is beyond the range of a JSON number"),
            ("y=-Infinity", "--input y: -Infinity is not a JSON number"),
            (f"y={HUGE}", "--input y: integer with 5000 digits is out of range"),
            (f"z={NESTED}", "--input z: nested deeper than 64 levels"),
            ("z=" + "[" * 65 + "]" * 65, "--input z: nested deeper than 64 levels"),
        ],
    )
    def test_refused_naming_the_input(self, cli: Cli, pair: str, says: str) -> None:
        """NaN, overflowing numbers and deep nesting: one line, exit 2, no run created."""
        done = cli("run", _typed(cli), "--input", pair)
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.splitlines()
        assert line.startswith(f"error: {says}")
        assert done.stdout == ""
        assert cli.json("list", "--json") == []

    def test_finite_values_are_stored_as_given(self, cli: Cli) -> None:
        """A large finite float and a 64-bit integer reach the store unchanged, as JSON."""
        done = cli("run", _typed(cli), "-i", "x=1.5e300", "-i", f"y={INT_MIN}", "-i", "z=[[1]]")
        assert done.returncode == 0, done.stderr
        conn = sqlite3.connect(cli.db)
        [(text,)] = conn.execute("SELECT inputs FROM runs").fetchall()
        conn.close()
        assert json.loads(text)["x"] == 1.5e300 and json.loads(text)["y"] == INT_MIN


class _Returns(Action):
    """Returns what it is told to, or checkpoints it first."""

    output_schema: dict[str, Any] = {"type": "object"}

    def __init__(self, outputs: dict[str, Any], checkpoint: Any = None) -> None:
        self.outputs, self.data = outputs, checkpoint

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        if self.data is not None:
            await ctx.checkpoint(self.data)
        return self.outputs

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        return None


def _saga() -> CompiledSaga:
    return CompiledSaga(
        name="p",
        version=1,
        inputs={"x": {}},
        actions={"a": ActionSpec(name="a", uses="returns")},
    )


def _run(tmp: Path, action: Action, inputs: dict[str, Any]) -> Any:
    async def main() -> Any:
        async with Engine(f"sqlite://{tmp / 'runs.db'}", actions={"returns": action}) as engine:
            return await engine.run(_saga(), inputs)

    return anyio.run(main)


class TestPython:
    @pytest.mark.parametrize(
        "value", [float("nan"), float("inf"), [float("-inf")], {"k": 10**30}, {1: "x"}]
    )
    def test_inputs_refused_naming_them(self, tmp_path: Path, value: Any) -> None:
        """Engine.run refuses inputs that are not finite JSON with an InputError."""
        with pytest.raises(InputError, match=r"^input x\b"):
            _run(tmp_path, _Returns({}), {"x": value})

    def test_outputs_fail_the_action(self, tmp_path: Path) -> None:
        """An action returning NaN fails for good, naming the output: nothing stores it."""
        result = _run(tmp_path, _Returns({"v": [1, float("nan")]}), {"x": 1})
        assert result.state == "compensated"
        assert "outputs.v[1]: nan is not a finite number" in result.error

    def test_checkpoints_fail_the_action(self, tmp_path: Path) -> None:
        """A checkpoint holding infinity is refused before it is written."""
        result = _run(tmp_path, _Returns({}, checkpoint={"at": float("inf")}), {"x": 1})
        assert result.state == "compensated"
        assert "checkpoint of a.at: inf is not a finite number" in result.error

    def test_the_store_refuses_nan_as_a_last_guard(self, tmp_path: Path) -> None:
        """A value that slipped past the edges never becomes `NaN` text in the store."""

        async def main() -> None:
            async with open_store(f"sqlite://{tmp_path / 'runs.db'}") as store:
                run = NewRun("r", "s", "h", {}, {"x": float("nan")}, {})
                with pytest.raises(ValueError, match="JSON compliant"):
                    await store.create_run(run)

        anyio.run(main)


class TestValues:
    def test_parse_and_check_agree(self) -> None:
        """parse_json accepts exactly the text whose value check_json accepts."""
        for text in ('[1, 2.5, null, true, "s"]', str(INT_MAX), '{"a": {"b": []}}'):
            check_json(parse_json(text), "v")
        for text in ("NaN", "Infinity", "1e400", str(INT_MAX + 1), NESTED):
            with pytest.raises(NotJson):
                parse_json(text)
