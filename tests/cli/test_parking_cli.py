"""Parked runs from the command line, each step a real `sagactl` process on one SQLite file.

`sagactl run` returns once the run waits for a signal; no process holds it. `sagactl
signal` with data breaking the schema exits 2 and the run keeps waiting; with good data it
drives the run to its end. A timer that ran out is noticed by `resume --all`. Runs with
one concurrency key, started by separate processes, run one at a time in order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import Cli, wait_for


def approval_saga(cli: Cli, timeout: str = "1h") -> Path:
    body: dict[str, Any] = {
        "apiVersion": "sagactl/v1",
        "kind": "Saga",
        "metadata": {"name": "approval"},
        "inputs": {"file": {"type": "string", "default": str(cli.out)}},
        "defaults": {"retry": {"attempts": 1}},
        "actions": {
            "prepare": {
                "uses": "clitest.append",
                "with": {"file": "${{ inputs.file }}", "name": "prepare"},
            },
            "approve": {
                "uses": "wait.signal",
                "needs": ["prepare"],
                "with": {"name": "approve", "timeout": timeout, "schema": {"type": "string"}},
            },
            "deploy": {
                "uses": "clitest.append",
                "with": {
                    "file": "${{ inputs.file }}",
                    "name": "${{ actions.approve.outputs.data }}",
                },
            },
        },
    }
    path = cli.tmp / "approval.yaml"
    path.write_text(json.dumps(body))
    return path


def test_run_parks_and_a_signal_from_another_process_finishes_it(cli: Cli) -> None:
    started = cli("run", str(approval_saga(cli)))
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    assert "approve waits for signal 'approve' until " in started.stderr
    assert f"sagactl signal {run_id} approve" in started.stderr
    shown = cli.json("status", run_id, "--json")
    assert (shown["state"], shown["owner"]) == ("waiting", None)
    assert [w["signal"] for w in shown["waiting_for"]] == ["approve"]

    refused = cli("signal", run_id, "approve", "--data", "3")
    assert refused.returncode == 2
    assert refused.stderr == "error: signal approve: data: 3 is not of type 'string'\n"
    assert cli.json("status", run_id, "--json")["state"] == "waiting"

    done = cli("signal", run_id, "approve", "--data", '"ann"')
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{run_id} succeeded\n"
    assert cli.lines() == ["start:prepare", "prepare", "start:ann", "ann"]
    again = cli("signal", run_id, "approve", "--data", '"bob"')
    assert again.returncode == 2
    assert again.stderr == f"error: run {run_id} has finished (succeeded): it waits for no signal\n"


def test_bad_signal_arguments_exit_2(cli: Cli) -> None:
    run_id = cli("run", str(approval_saga(cli))).stdout.strip()
    for args, message in [
        (("--data", "{"), "error: --data is not JSON: "),
        (("--data", "NaN"), "error: --data: "),
    ]:
        done = cli("signal", run_id, "approve", *args)
        assert done.returncode == 2
        assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
    unknown = cli("signal", "nosuchrun", "approve")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no run 'nosuchrun'")
    assert cli.json("status", run_id, "--json")["state"] == "waiting"


def test_a_timer_that_ran_out_compensates_on_resume_all(cli: Cli) -> None:
    run_id = cli("run", str(approval_saga(cli, timeout="300ms"))).stdout.strip()
    wait_for(lambda: cli("resume", "--all").stdout != "", "the timer to run out", 10)
    shown = cli.json("status", run_id, "--json")
    assert shown["state"] == "compensated"
    assert shown["actions"]["approve"]["error"].startswith("SignalTimeout: no signal 'approve'")
    assert cli.lines() == ["start:prepare", "prepare", "undo-start:prepare", "undo:prepare"]


def keyed_saga(cli: Cli) -> Path:
    body = {
        "apiVersion": "sagactl/v1",
        "kind": "Saga",
        "metadata": {"name": "keyed"},
        "inputs": {"tag": {"type": "string"}, "app": {"type": "string"}},
        "concurrency": {"key": "${{ inputs.app }}", "limit": 1},
        "actions": {
            "work": {
                "uses": "clitest.append",
                "with": {
                    "file": str(cli.out),
                    "name": "${{ inputs.tag }}",
                    "hold": str(cli.tmp / "hold"),
                },
            }
        },
    }
    path = cli.tmp / "keyed.yaml"
    path.write_text(json.dumps(body))
    return path


def test_runs_of_one_key_wait_their_turn_across_processes(cli: Cli) -> None:
    saga = str(keyed_saga(cli))
    hold = cli.tmp / "hold"
    hold.write_text("")
    first = cli.start("run", saga, "-i", "tag=r1", "-i", "app=site")
    wait_for(lambda: cli.lines() == ["start:r1"], "the first run to hold the key")
    queued = []
    for n, tag in enumerate(["r2", "r3"], start=1):
        queued.append(cli.start("run", saga, "-i", f"tag={tag}", "-i", "app=site"))
        stderr = cli.tmp / f"stderr-{n}.txt"
        wait_for(lambda f=stderr: "waits for its turn" in f.read_text(), f"{tag} to queue")
    listed = cli.json("list", "--json")
    assert [(r["state"], r["concurrency_key"]) for r in listed] == [
        ("running", "site"),
        ("queued", "site"),
        ("queued", "site"),
    ]
    assert "concurrency key 'site': 2 runs ahead" in (cli.tmp / "stderr-2.txt").read_text()
    hold.unlink()
    for proc in [first, *queued]:
        assert proc.wait(timeout=60) == 0
    assert cli.lines() == ["start:r1", "r1", "start:r2", "r2", "start:r3", "r3"]


def test_a_signal_process_killed_mid_run_is_resumed(cli: Cli) -> None:
    """SIGKILL the `sagactl signal` process while it drives the run on: the signal was
    consumed with the wait's completion, so `resume --all` goes on from there, and the
    wait neither runs again nor asks for another signal."""
    saga = approval_saga(cli)
    body = json.loads(saga.read_text())
    body["actions"]["deploy"]["with"]["hold"] = str(cli.tmp / "hold")
    saga.write_text(json.dumps(body))
    run_id = cli("run", str(saga)).stdout.strip()
    (cli.tmp / "hold").write_text("")
    sender = cli.start("signal", run_id, "approve", "--data", '"ann"')
    wait_for(lambda: cli.lines()[-1:] == ["start:ann"], "deploy to start")
    sender.kill()
    sender.wait()
    (cli.tmp / "hold").unlink()
    resumed = cli("resume", "--all")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == f"{run_id} succeeded\n"
    assert cli.lines() == ["start:prepare", "prepare", "start:ann", "start:ann", "ann"]
    approve = cli.json("status", run_id, "--json")["actions"]["approve"]
    assert (approve["attempts"], approve["outputs"]) == (2, {"data": "ann"})
