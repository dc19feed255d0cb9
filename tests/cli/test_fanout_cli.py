"""Fan-out through the real `sagactl`: status and graph show the elements, a SIGKILL
mid-fan-out resumes without rerunning a completed element, validate names mistakes."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

from .conftest import Cli, on_terminal, wait_for

HOSTS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "fail": {"type": "boolean"},
            "hold": {"type": "string"},
        },
    },
}


def _saga(cli: Cli) -> Path:
    """prep, then deploy: clitest.append once per host, one at a time."""
    append = {"uses": "clitest.append"}
    body: dict[str, Any] = {
        "apiVersion": "sagactl/v1",
        "kind": "Saga",
        "metadata": {"name": "fan", "version": 1},
        "inputs": {"file": {"type": "string", "default": str(cli.out)}, "hosts": HOSTS},
        "defaults": {"retry": {"attempts": 1}},
        "actions": {
            "prep": {**append, "with": {"file": "${{ inputs.file }}", "name": "prep"}},
            "deploy": {
                **append,
                "needs": ["prep"],
                "for_each": "${{ inputs.hosts }}",
                "max_parallel": 1,
                "with": {
                    "file": "${{ inputs.file }}",
                    "name": "${{ item.name }}",
                    "fail": "${{ item.fail }}",
                    "hold": "${{ item.hold }}",
                },
            },
        },
    }
    path = cli.tmp / "fan.yaml"
    path.write_text(json.dumps(body, indent=2))
    return path


def _hosts(*names: str, fail: str = "", hold: str = "", hold_path: str = "") -> str:
    return json.dumps(
        [{"name": n, "fail": n == fail, "hold": hold_path if n == hold else ""} for n in names]
    )


class TestFanOutCli:
    def test_status_and_graph_show_each_element(self, cli: Cli) -> None:
        path = _saga(cli)
        done = cli("run", "-q", str(path), "-i", f"hosts={_hosts('a', 'b', 'c')}")
        assert done.returncode == 0, done.stderr
        run_id = done.stdout.strip()
        assert cli.lines() == ["start:prep", "prep", "start:a", "a", "start:b", "b", "start:c", "c"]
        status = cli.json("status", run_id, "--json")
        deploy = status["actions"]["deploy"]
        assert deploy["count"] == 3
        assert [e["state"] for e in deploy["elements"]] == ["succeeded"] * 3
        assert [r["name"] for r in deploy["outputs"]["results"]] == ["a", "b", "c"]
        text = cli("status", run_id)
        assert text.returncode == 0
        rows = [
            [cell for cell in line.split() if cell != "│"]
            for line in text.stdout.splitlines()
            if "deploy[" in line
        ]
        assert [row[:3] for row in rows] == [
            ["deploy[0]", "succeeded", "1"],
            ["deploy[1]", "succeeded", "1"],
            ["deploy[2]", "succeeded", "1"],
        ]
        drawn = cli("graph", "--run", run_id)
        assert drawn.returncode == 0 and "deploy \N{MULTIPLICATION SIGN}3/3" in drawn.stdout
        static = cli("graph", str(path), "--format", "json")
        node = next(n for n in json.loads(static.stdout)["nodes"] if n["id"] == "deploy")
        assert node["for_each"] == "${{ inputs.hosts }}"
        assert "deploy \N{MULTIPLICATION SIGN}N" in cli("graph", str(path)).stdout

    def test_a_failed_element_undoes_the_completed_ones(self, cli: Cli) -> None:
        path = _saga(cli)
        done = cli("run", "-q", str(path), "-i", f"hosts={_hosts('a', 'b', 'c', fail='b')}")
        assert done.returncode == 1
        run_id = done.stdout.strip()
        status = cli.json("status", run_id, "--json")
        assert status["state"] == "compensated"
        assert status["error"] == "element 1: FatalError: b failed on purpose"
        assert [e["state"] for e in status["actions"]["deploy"]["elements"]] == [
            "compensated",
            "failed",
        ]
        assert cli.lines()[-4:] == ["undo-start:a", "undo:a", "undo-start:prep", "undo:prep"]
        assert "start:c" not in cli.lines()
        drawn = cli("graph", "--run", run_id)
        assert "deploy \N{MULTIPLICATION SIGN}0/3" in drawn.stdout

    def test_sigkill_mid_fan_out_resumes_only_unfinished_elements(self, cli: Cli) -> None:
        hold = cli.tmp / "hold"
        hold.touch()
        hosts = _hosts("a", "b", "c", hold="b", hold_path=str(hold))
        proc = cli.start("run", "-q", str(_saga(cli)), "-i", f"hosts={hosts}")
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        wait_for(lambda: "start:b" in cli.lines(), "element 1 to be running")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert cli.integrity() == "ok"
        assert ("element_succeeded", "deploy") in cli.events(run_id)
        hold.unlink()
        done = cli("resume", run_id)
        assert done.returncode == 0, done.stderr
        assert cli.lines() == [
            "start:prep",
            "prep",
            "start:a",
            "a",
            "start:b",
            "start:b",
            "b",
            "start:c",
            "c",
        ]
        elements = cli.json("status", run_id, "--json")["actions"]["deploy"]["elements"]
        assert [e["attempts"] for e in elements] == [1, 2, 1]

    def test_validate_names_fan_out_mistakes(self, cli: Cli) -> None:
        bad = cli.tmp / "bad.yaml"
        bad.write_text(
            "apiVersion: sagactl/v1\n"
            "kind: Saga\n"
            "metadata: {name: bad}\n"
            "inputs: {one: {type: string}, file: {type: string}}\n"
            "actions:\n"
            "  a: {uses: clitest.append, for_each: '${{ inputs.one }}',\n"
            "      with: {file: '${{ inputs.file }}', name: x}}\n"
            "  b: {uses: clitest.append, with: {file: '${{ inputs.file }}', name: '${{ item }}'}}\n"
        )
        done = cli("validate", str(bad))
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            f"{bad}:6:39: actions.a.for_each: for_each needs an array, but input 'one' is a string",
            f"{bad}:8:70: actions.b.with.name: '${{{{ item }}}}' is only usable in an "
            "action with for_each",
        ]


class TestFanOutLiveView:
    def test_pipe_gets_a_line_per_element(self, cli: Cli) -> None:
        done = cli("run", str(_saga(cli)), "-i", f"hosts={_hosts('a', 'b')}")
        run_id = done.stdout.strip()
        assert done.stderr.splitlines() == [
            f"{run_id} running",
            f"{run_id} prep running (attempt 1)",
            f"{run_id} prep succeeded",
            f"{run_id} deploy running (attempt 1)",
            f"{run_id} deploy[0] running (attempt 1)",
            f"{run_id} deploy[0] succeeded",
            f"{run_id} deploy[1] running (attempt 1)",
            f"{run_id} deploy[1] succeeded",
            f"{run_id} deploy succeeded",
            f"{run_id} succeeded",
        ]

    def test_terminal_bar_counts_elements(self, cli: Cli) -> None:
        screen = on_terminal(
            ["run", str(_saga(cli)), "-i", f"hosts={_hosts('a', 'b', 'c')}"], cli.env
        )
        assert screen.code == 0
        final = screen.lines()
        deploy = [line for line in final if line.startswith("deploy")]
        assert re.match(r"^deploy\s+succeeded\s+━+\s+\S+\s+3/3 elements", deploy[-1]), deploy
