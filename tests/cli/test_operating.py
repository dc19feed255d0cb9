"""Issue 13 items 3-5 through the real `sagactl`: retry, fork, pause/unpause, bulk by filter.

Faults come from `--fault` (the product's own injection) or from a file a test removes (the
cause an operator fixes); effects are the lines `clitest.append` writes, so "no completed
action ran twice" is a count of lines.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import SAGACTL, Cli, wait_for

HALF_DONE = Path(__file__).with_name("half_done.py")


def _yaml(cli: Cli, name: str, actions: dict[str, dict[str, Any]], **inputs: Any) -> Path:
    """A saga file of clitest.append actions; `pivot`/`needs` are action keys, the rest
    goes into `with`."""
    body: dict[str, Any] = {
        "apiVersion": "sagactl/v1",
        "kind": "Saga",
        "metadata": {"name": name, "version": 1},
        "inputs": {"file": {"type": "string", "default": str(cli.out)}, **inputs},
        "defaults": {"retry": {"attempts": 1}},
        "actions": {},
    }
    for action, spec in actions.items():
        keys = {k: spec.pop(k) for k in ("pivot", "needs") if k in spec}
        body["actions"][action] = {
            "uses": "clitest.append",
            "with": {"file": "${{ inputs.file }}", "name": action, **spec},
            **keys,
        }
    path = cli.tmp / f"{name}.yaml"
    path.write_text(json.dumps(body, indent=2))
    return path


def _log(cli: Cli, run_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(cli.db) as conn:
        rows = conn.execute(
            "SELECT kind, action, data FROM run_log WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    return [{"kind": k, "action": a, "data": json.loads(d)} for k, a, d in rows]


def _run_row(cli: Cli, run_id: str) -> tuple[str, str, dict[str, Any]]:
    """(state, definition hash, inputs)."""
    with sqlite3.connect(cli.db) as conn:
        state, digest, inputs = conn.execute(
            "SELECT state, definition_hash, inputs FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
    return state, digest, json.loads(inputs)


def _states(cli: Cli) -> dict[str, int]:
    with sqlite3.connect(cli.db) as conn:
        rows = conn.execute("SELECT state, count(*) FROM runs GROUP BY state").fetchall()
    return {state: n for state, n in rows}


class TestRetry:
    def test_stuck_after_the_pivot_then_retried_without_the_fault(self, cli: Cli) -> None:
        """c fails after the pivot b (an injected fault): stuck. `retry` without the fault
        runs c only, on its second attempt, and the log says who retried it."""
        path = _yaml(
            cli, "pivoted", {"a": {}, "b": {"needs": ["a"], "pivot": True}, "c": {"needs": ["b"]}}
        )
        first = cli("run", "-q", str(path), "--fault", "c:error", "--run-id", "r1")
        assert first.returncode == 1 and "run r1 stuck at c" in first.stderr
        done = cli("retry", "-q", "r1")
        assert (done.returncode, done.stdout) == (0, "r1 succeeded\n"), done.stderr
        assert cli.lines() == ["start:a", "a", "start:b", "b", "start:c", "c"]
        log = _log(cli, "r1")
        (retried,) = [r for r in log if r["data"].get("operation") == "retry"]
        assert retried["kind"] == "run_resumed" and retried["data"]["from_state"] == "stuck"
        assert retried["data"]["by"]["user"] and retried["data"]["by"]["pid"] != os.getpid()
        c_attempts = [
            r["data"]["attempt"]
            for r in log
            if r["kind"] == "action_started" and r["action"] == "c"
        ]
        assert c_attempts == [1, 2]

    def test_stuck_compensating_then_retried_once_the_cause_is_gone(self, cli: Cli) -> None:
        """b fails; undoing a fails while a file exists: stuck. The operator removes it and
        retries: a is undone once, and the run ends compensated (exit 1: it did not succeed)."""
        cause = cli.tmp / "cause"
        cause.touch()
        path = _yaml(
            cli, "undo", {"a": {"undo_fail_while": str(cause)}, "b": {"needs": ["a"], "fail": True}}
        )
        first = cli("run", "-q", str(path), "--run-id", "r1")
        assert first.returncode == 1 and "run r1 stuck" in first.stderr
        refused = cli("retry", "-q", "r1")  # the cause is still there: stuck again
        assert refused.returncode == 1 and refused.stdout == "r1 stuck\n"
        cause.unlink()
        done = cli("retry", "-q", "r1")
        assert (done.returncode, done.stdout) == (1, "r1 compensated\n"), done.stderr
        lines = cli.lines()
        assert lines.count("start:a") == 1 and lines.count("start:b") == 1
        assert lines.count("undo-start:a") == 3 and lines.count("undo:a") == 1

    def test_retry_of_a_run_that_is_not_stuck_is_refused(self, cli: Cli) -> None:
        path = _yaml(cli, "fine", {"a": {}})
        assert cli("run", "-q", str(path), "--run-id", "r1").returncode == 0
        done = cli("retry", "r1")
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == "error: run r1 is succeeded, not stuck: only a stuck run is retried\n"


class TestFork:
    def test_fork_with_an_edited_input_runs_the_pinned_definition(self, cli: Cli) -> None:
        """The file changed since r1 ran; the fork runs r1's pinned definition with its
        own `tag`, and its log links it to r1."""
        tag = {"type": "string", "default": "one"}
        path = _yaml(cli, "tagged", {"a": {"name": "a-${{ inputs.tag }}"}}, tag=tag)
        assert cli("run", "-q", str(path), "--run-id", "r1").returncode == 0
        _yaml(cli, "tagged", {"a": {"name": "changed-${{ inputs.tag }}"}}, tag=tag)
        done = cli("run", "-q", str(path), "--from", "r1", "--input", "tag=two", "--run-id", "r2")
        assert (done.returncode, done.stdout) == (0, "r2\n"), done.stderr
        assert cli.lines() == ["start:a-one", "a-one", "start:a-two", "a-two"]
        state, digest, inputs = _run_row(cli, "r2")
        assert (state, digest) == ("succeeded", _run_row(cli, "r1")[1])
        assert inputs == {"file": str(cli.out), "tag": "two"}
        forked = _log(cli, "r2")[1]
        assert forked["kind"] == "run_forked"
        assert forked["data"]["from_run"] == "r1" and forked["data"]["changed"] == ["tag"]
        detached = cli("run", "tagged", "--from", "r1", "--detach", "--run-id", "r3")
        assert (detached.returncode, detached.stdout) == (0, "r3\n"), detached.stderr
        assert _run_row(cli, "r3")[0] == "queued" and _run_row(cli, "r3")[2]["tag"] == "one"

    @pytest.mark.parametrize(
        ("args", "says"),
        [
            (("other", "--from", "r1"), "error: --from r1: that run is of saga tagged, not other"),
            (("tagged", "--from", "r1", "--input", "bogus=1"), "saga tagged has no such input"),
            (
                ("tagged", "--from", "r1", "--input", "tag=7", "--fault", "zz:error"),
                "--fault names 'zz'",
            ),
        ],
    )
    def test_a_bad_fork_creates_nothing(self, cli: Cli, args: tuple[str, ...], says: str) -> None:
        path = _yaml(cli, "tagged", {"a": {}}, tag={"type": "string", "default": "one"})
        _yaml(cli, "other", {"a": {}})
        assert cli("run", "-q", str(path), "--run-id", "r1").returncode == 0
        named = [str(cli.tmp / f"{a}.yaml") if a in ("other", "tagged") else a for a in args]
        done = cli("run", *named)
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr.startswith("error: ") and says in done.stderr
        assert len(done.stderr.splitlines()) == 1
        assert _states(cli) == {"succeeded": 1}


class TestPause:
    def test_a_followed_run_returns_when_paused_and_unpause_finishes_it(self, cli: Cli) -> None:
        """`sagactl run` follows the run while a runs; `pause` from another process lets a
        finish, starts nothing new, and `run` returns 0 naming `unpause`. A worker-less
        `unpause` on SQLite drives the rest here: b runs once, a never again."""
        hold = cli.tmp / "hold"
        hold.touch()
        path = _yaml(cli, "held", {"a": {"hold": str(hold)}, "b": {"needs": ["a"]}})
        proc = cli.start("run", str(path), "--run-id", "p1")
        wait_for(lambda: "start:a" in cli.lines(), "a to run")
        paused = cli("pause", "p1")
        assert (paused.returncode, paused.stdout) == (0, "p1 running\n"), paused.stderr
        assert paused.stderr == "run p1 pauses once its running actions finish\n"
        stderr = cli.tmp / "stderr-0.txt"
        wait_for(
            lambda: "p1 pausing (waiting for the running actions: a)" in stderr.read_text(),
            "the owner to hear of it",
        )
        hold.unlink()
        assert proc.wait(timeout=60) == 0
        assert (
            "run p1 paused (its running actions finished): continue it with 'sagactl unpause p1'"
            in stderr.read_text()
        )
        assert cli.lines() == ["start:a", "a"]
        assert _run_row(cli, "p1")[0] == "paused"
        assert cli("resume", "--all").stdout == ""  # nobody picks a paused run up
        done = cli("unpause", "-q", "p1")
        assert (done.returncode, done.stdout) == (0, "p1 succeeded\n"), done.stderr
        assert cli.lines() == ["start:a", "a", "start:b", "b"]

    def test_a_paused_run_is_compensated_when_cancelled(self, cli: Cli) -> None:
        path = _yaml(cli, "two", {"a": {}, "b": {"needs": ["a"]}})
        queued = cli("run", str(path), "--detach", "--run-id", "q1")
        assert queued.returncode == 0, queued.stderr
        assert cli("pause", "q1").stdout == "q1 paused\n"
        done = cli("cancel", "q1")
        assert (done.returncode, done.stdout) == (0, "q1 cancelled\n"), done.stderr
        assert cli.lines() == []
        kinds = [r["kind"] for r in _log(cli, "q1")]
        assert kinds == [
            "run_created",
            "run_paused",
            "run_compensating",
            "action_skipped",
            "action_skipped",
            "run_finished",
        ]


def _make_half_done(cli: Cli, path: Path, count: int) -> None:
    """`count` runs of `path` with a done and b's intent logged, their owner SIGKILLed."""
    proc = subprocess.Popen(
        [sys.executable, str(HALF_DONE), str(cli.db), str(path), str(count)],
        env=cli.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


def _measured(cli: Cli, *args: str, stdin: str = "") -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr, peak RSS in KiB) of a real `sagactl`."""
    out, err = cli.tmp / "m-out.txt", cli.tmp / "m-err.txt"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            [SAGACTL, *args], env=cli.env, stdin=subprocess.PIPE, stdout=o, stderr=e, text=True
        )
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the test's
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out.read_text(), err.read_text(), int(usage.ru_maxrss)


class TestBulk:
    def test_filter_dry_run_confirmation_and_refusals(self, cli: Cli) -> None:
        """Four runs: two stuck, one succeeded, one of another saga. The filter lists the
        two stuck ones; answering no changes nothing; `--yes` abandons exactly them."""
        stuck = _yaml(
            cli, "sticky", {"a": {"undo_fail": True}, "b": {"needs": ["a"], "fail": True}}
        )
        fine = _yaml(cli, "fine", {"a": {}})
        for run_id in ("s1", "s2"):
            assert cli("run", "-q", str(stuck), "--run-id", run_id).returncode == 1
        assert cli("run", "-q", str(fine), "--run-id", "f1").returncode == 0
        code, out, err, _ = _measured(
            cli, "abandon", "--filter", "saga=sticky,state=stuck", "--dry-run"
        )
        assert code == 0 and err == "2 runs match 'saga=sticky,state=stuck'\n"
        assert [line.split()[:3] for line in out.splitlines()] == [
            ["s2", "sticky", "stuck"],
            ["s1", "sticky", "stuck"],
        ]
        code, out, err, _ = _measured(cli, "abandon", "--filter", "state=stuck", stdin="n\n")
        assert code == 1 and "2 runs match 'state=stuck': abandon them? [y/N]" in err
        assert _states(cli) == {"stuck": 2, "succeeded": 1}
        code, out, err, _ = _measured(cli, "abandon", "--filter", "state=stuck|succeeded", "--yes")
        assert code == 1  # the succeeded run cannot be abandoned: refused, the others go on
        assert sorted(out.splitlines()) == [
            "f1 refused: run f1 has already finished (succeeded): nothing to abandon",
            "s1 abandoned",
            "s2 abandoned",
        ]
        assert err == "abandon: 2 of 3 runs (2 abandoned), 1 refused\n"
        assert _states(cli) == {"abandoned": 2, "succeeded": 1}
        code, out, err, _ = _measured(cli, "retry", "--filter", "before=1h", "--yes")
        assert (code, out, err) == (0, "", "0 runs match 'before=1h'\n")

    def test_unpause_by_filter(self, cli: Cli) -> None:
        """Three queued runs paused by filter; `unpause --filter` lists them, asks, and
        with `--yes` drives each here (SQLite) to its end; a run that is not paused is
        refused and the others go on."""
        path = _yaml(cli, "two", {"a": {}, "b": {"needs": ["a"]}})
        for run_id in ("u1", "u2", "u3"):
            assert cli("run", str(path), "--detach", "--run-id", run_id).returncode == 0
        code, out, err, _ = _measured(cli, "pause", "--filter", "saga=two", "--yes")
        assert (code, err) == (0, "pause: 3 of 3 runs (3 paused), 0 refused\n"), err
        code, out, err, _ = _measured(cli, "unpause", "--filter", "state=paused", "--dry-run")
        assert code == 0 and err == "3 runs match 'state=paused'\n"
        assert sorted(line.split()[0] for line in out.splitlines()) == ["u1", "u2", "u3"]
        code, out, err, _ = _measured(cli, "unpause", "--filter", "state=paused", stdin="n\n")
        assert code == 1 and "3 runs match 'state=paused': unpause them? [y/N]" in err
        assert _states(cli) == {"paused": 3}
        assert cli("unpause", "-q", "u1").stdout == "u1 succeeded\n"
        code, out, err, _ = _measured(cli, "unpause", "--filter", "saga=two", "--yes")
        assert code == 1  # u1 is no longer paused: refused, the others go on
        assert sorted(out.splitlines()) == [
            "u1 refused: run u1 is succeeded, not paused",
            "u2 succeeded",
            "u3 succeeded",
        ]
        assert err == "unpause: 2 of 3 runs (2 succeeded), 1 refused\n"
        assert _states(cli) == {"succeeded": 3}
        assert cli.lines().count("b") == 3  # each run's actions ran once

    @pytest.mark.slow
    @pytest.mark.timeout(900)  # 2,200 runs made, then compensated, on a shared machine
    def test_bulk_cancel_of_2000_runs_in_bounded_memory(self, cli: Cli, tmp_path: Path) -> None:
        """2,000 runs half done (their owner killed): dry run counts them, cancel compensates
        every one (a undone once each), and the CLI's peak memory is that of 200 runs: the
        matches are paged, never all loaded."""
        hold = tmp_path / "hold"
        hold.touch()
        peaks = {}
        for count in (200, 2000):
            run = Cli(tmp_path / str(count), tmp_path / f"{count}.db", tmp_path / f"{count}.txt")
            run.tmp.mkdir()
            path = _yaml(run, "bulk", {"a": {}, "b": {"needs": ["a"], "hold": str(hold)}})
            _make_half_done(run, path, count)
            assert _states(run) == {"running": count}
            flt = "saga=bulk,state=running"
            code, out, err, _ = _measured(run, "cancel", "--filter", flt, "--dry-run")
            assert (code, err) == (0, f"{count} runs match '{flt}'\n")
            assert len(set(out.splitlines())) == count
            code, out, err, peaks[count] = _measured(run, "cancel", "--filter", flt, "--yes")
            assert code == 0, err
            assert err == f"cancel: {count} of {count} runs ({count} cancelled), 0 refused\n"
            assert _states(run) == {"cancelled": count}
            lines = run.lines()
            assert lines.count("undo:a") == count and lines.count("a") == count
            assert len({line.split()[0] for line in out.splitlines()}) == count
        # Loading every match would grow with the count (each run's row, log and pinned
        # definition); paging keeps the peak where 200 runs put it.
        print(f"peak RSS of cancel --filter: {peaks} KiB")
        assert peaks[2000] < peaks[200] * 1.15, peaks
