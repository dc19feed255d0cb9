"""SIGKILL a real `sagactl run` at each phase of an action, then `sagactl resume`.

Each test waits for its kill point by polling the run's log (the SQLite file) or the
effects file the actions append to, kills the process with SIGKILL, checks the database
with `PRAGMA integrity_check`, and resumes: the run ends as an uninterrupted one would,
and no action whose completion was recorded runs again.
"""

from __future__ import annotations

import signal
import subprocess

from .conftest import Cli, wait_for


def _launch(cli: Cli, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = cli.start("run", "-q", *args)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _kill(cli: Cli, proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert cli.integrity() == "ok"


class TestCrashes:
    def test_kill_before_an_action(self, cli: Cli) -> None:
        """Killed after b's intent is logged but before b runs: resume runs b once."""
        path = cli.saga("chain", {"a": {}, "b": {"needs": ["a"]}, "c": {"needs": ["b"]}})
        proc, run_id = _launch(cli, str(path), "--fault", "b:delay=30@before")
        wait_for(lambda: ("action_started", "b") in cli.events(run_id), "b's intent")
        _kill(cli, proc)
        assert "start:b" not in cli.lines()
        done = cli("resume", run_id)
        assert (done.returncode, done.stdout) == (0, f"{run_id} succeeded\n"), done.stderr
        assert cli.lines() == ["start:a", "a", "start:b", "b", "start:c", "c"]

    def test_kill_during_an_action(self, cli: Cli) -> None:
        """Killed while b runs: a live owner is never taken over; after the kill, b reruns."""
        hold = cli.tmp / "hold"
        hold.touch()
        path = cli.saga(
            "chain", {"a": {}, "b": {"needs": ["a"], "hold": str(hold)}, "c": {"needs": ["b"]}}
        )
        proc, run_id = _launch(cli, str(path))
        wait_for(
            lambda: "start:b" in cli.lines() and ("action_started", "b") in cli.events(run_id),
            "b to be running",
        )
        busy = cli("resume", run_id)
        assert busy.returncode == 1 and cli.lines().count("start:b") == 1
        assert busy.stderr.startswith(f"error: run {run_id} is held by a live process")
        _kill(cli, proc)
        hold.unlink()
        done = cli("resume", run_id)
        assert done.returncode == 0, done.stderr
        assert cli.lines() == ["start:a", "a", "start:b", "start:b", "b", "start:c", "c"]
        assert cli.json("status", run_id, "--json")["actions"]["b"]["attempts"] == 2

    def test_kill_after_an_action_before_its_record(self, cli: Cli) -> None:
        """Killed after b ran but before its completion was logged: b reruns, a does not."""
        path = cli.saga("chain", {"a": {}, "b": {"needs": ["a"]}, "c": {"needs": ["b"]}})
        proc, run_id = _launch(cli, str(path), "--fault", "b:delay=30@after")
        wait_for(lambda: "b" in cli.lines(), "b's effect")
        _kill(cli, proc)
        assert ("action_succeeded", "b") not in cli.events(run_id)
        done = cli("resume", run_id)
        assert done.returncode == 0, done.stderr
        assert cli.lines() == ["start:a", "a", "start:b", "b", "start:b", "b", "start:c", "c"]

    def test_kill_during_compensation(self, cli: Cli) -> None:
        """Killed while a is compensated: resume --all keeps compensating; a undone once."""
        hold = cli.tmp / "undo-hold"
        hold.touch()
        path = cli.saga(
            "undo", {"a": {"undo_hold": str(hold)}, "b": {"needs": ["a"], "fail": True}}
        )
        proc, run_id = _launch(cli, str(path))
        wait_for(lambda: "undo-start:a" in cli.lines(), "a's compensation")
        _kill(cli, proc)
        assert cli.json("status", run_id, "--json")["state"] == "compensating"
        hold.unlink()
        done = cli("resume", "--all")
        assert (done.returncode, done.stdout) == (1, f"{run_id} compensated\n")
        assert cli.lines() == ["start:a", "a", "start:b", "undo-start:a", "undo-start:a", "undo:a"]
        assert cli("resume", "--all").stdout == ""
