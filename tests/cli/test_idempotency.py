"""Issue 10 item 10: a run id repeats one request, not merely one id.

The same run id with the same definition and inputs returns the run; with other inputs or
another definition it is refused, naming the difference: exit 2 from the CLI, `RunExists`
(an `InputError`) from Python. The store suite checks the same on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from sagactl.engine import ActionSpec, CompiledSaga, Engine
from sagactl.engine.errors import InputError
from sagactl.engine.store import RunExists

from .conftest import Cli


def _saga(cli: Cli, *, extra: bool = False) -> str:
    actions: dict[str, dict[str, Any]] = {"a": {}, "b": {"needs": ["a"]}}
    if extra:
        actions["c"] = {"needs": ["b"]}
    path = cli.saga(
        "idem",
        actions,
        count={"type": "integer", "default": 1},
        label={"type": "string", "default": "x"},
    )
    return str(path)


class TestCli:
    def test_same_request_returns_the_run(self, cli: Cli) -> None:
        """Same definition and inputs: exit 0, the same run, nothing run twice."""
        first = cli("run", _saga(cli), "--run-id", "r", "-i", "count=2")
        second = cli("run", _saga(cli), "--run-id", "r", "-i", "count=2")
        assert (first.returncode, second.returncode) == (0, 0), second.stderr
        assert cli.lines().count("a") == 1

    def test_defaults_written_out_are_the_same_request(self, cli: Cli) -> None:
        """An input given as its default is the request made without it."""
        assert cli("run", _saga(cli), "--run-id", "r").returncode == 0
        again = cli("run", _saga(cli), "--run-id", "r", "-i", "count=1")
        assert again.returncode == 0, again.stderr

    def test_other_inputs_are_refused_naming_them(self, cli: Cli) -> None:
        """Other inputs under the run id: exit 2, one line naming each difference."""
        assert cli("run", _saga(cli), "--run-id", "r", "-i", "count=2").returncode == 0
        again = cli("run", _saga(cli), "--run-id", "r", "-i", "count=3", "-i", "label=y")
        assert again.returncode == 2
        assert again.stderr.strip().splitlines() == [
            "error: run r already exists with other inputs: "
            'count was 2, now 3; label was "x", now "y"'
        ]
        assert "Traceback" not in again.stderr
        assert cli.lines().count("a") == 1
        assert cli.json("status", "r", "--json")["state"] == "succeeded"

    def test_another_definition_is_refused_with_exit_2(self, cli: Cli) -> None:
        """Another definition under the run id: exit 2 (it was 1), one line."""
        assert cli("run", _saga(cli), "--run-id", "r").returncode == 0
        again = cli("run", _saga(cli, extra=True), "--run-id", "r")
        assert again.returncode == 2
        [line] = again.stderr.strip().splitlines()
        assert line.startswith("error: run r already exists for idem (definition ")
        assert "not this definition" in line
        assert "c" not in cli.lines()

    def test_detached_run_refused_too(self, cli: Cli) -> None:
        """`run --detach` with other inputs under a queued run id is refused the same way."""
        assert cli("run", _saga(cli), "--run-id", "r", "--detach").returncode == 0
        again = cli("run", _saga(cli), "--run-id", "r", "--detach", "-i", "label=z")
        assert again.returncode == 2
        assert 'label was "x", now "z"' in again.stderr


def _api_saga() -> CompiledSaga:
    return CompiledSaga(
        name="api",
        version=1,
        inputs={"n": {"type": "integer"}},
        actions={"a": ActionSpec(name="a", uses="noop")},
    )


class TestPython:
    def test_engine_run_raises_run_exists(self, tmp_path: Path) -> None:
        """Engine.run with other inputs under a run id raises RunExists, an InputError
        whose message names the input; the same inputs return the finished run."""
        from sagactl.engine import Action, ActionContext, Inputs, Outputs

        class Noop(Action):
            async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
                return {}

        async def main() -> None:
            db = f"sqlite://{tmp_path / 'runs.db'}"
            async with Engine(db, actions={"noop": Noop()}) as engine:
                first = await engine.run(_api_saga(), {"n": 1}, run_id="r")
                again = await engine.run(_api_saga(), {"n": 1}, run_id="r")
                assert (first.state, again.state) == ("succeeded", "succeeded")
                with pytest.raises(RunExists, match="n was 1, now 2") as caught:
                    await engine.run(_api_saga(), {"n": 2}, run_id="r")
                assert isinstance(caught.value, InputError)
                with pytest.raises(RunExists, match="not this definition"):
                    await engine.start(_api_saga_other(), {"n": 1}, run_id="r")

        anyio.run(main)


def _api_saga_other() -> CompiledSaga:
    return CompiledSaga(
        name="api",
        version=2,
        inputs={"n": {"type": "integer"}},
        actions={"a": ActionSpec(name="a", uses="noop")},
    )
