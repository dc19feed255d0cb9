"""Every runtime command of the real `sagactl`: output, JSON shapes and exit codes."""

from __future__ import annotations

import json
import re

from .conftest import Cli

ID = re.compile(r"^[0-9a-f]{16}$")


def _three(cli: Cli, **b: object) -> str:
    path = cli.saga(
        "three",
        {"a": {}, "b": {"needs": ["a"], **b}, "c": {"needs": ["a"]}},
        count={"type": "integer", "default": 1},
        label={"type": "string", "default": "x"},
    )
    return str(path)


class TestRun:
    def test_success_prints_only_the_run_id(self, cli: Cli) -> None:
        """A successful run prints its id alone on stdout, plain lines on stderr, exits 0."""
        done = cli("run", _three(cli))
        assert done.returncode == 0, done.stderr
        run_id = done.stdout.strip()
        assert ID.match(run_id) and done.stdout == run_id + "\n"
        assert f"{run_id} a succeeded" in done.stderr.splitlines()
        assert sorted(line for line in cli.lines() if ":" not in line) == ["a", "b", "c"]

    def test_run_id_is_idempotent(self, cli: Cli) -> None:
        """Running again with the same --run-id returns the same run without rerunning it."""
        first = cli("run", _three(cli), "--run-id", "r-1")
        second = cli("run", _three(cli), "--run-id", "r-1")
        assert (first.returncode, second.returncode) == (0, 0)
        assert first.stdout == second.stdout == "r-1\n"
        assert cli.lines().count("a") == 1
        assert [r["run_id"] for r in cli.json("list", "--json")] == ["r-1"]

    def test_inputs_are_parsed_by_schema_type(self, cli: Cli) -> None:
        """An integer input is parsed as JSON; a string input keeps `12` as the string."""
        done = cli("run", _three(cli), "-i", "count=3", "-i", "label=12")
        assert done.returncode == 0, done.stderr
        row = cli.json("status", done.stdout.strip(), "--json")
        assert row["state"] == "succeeded"

    def test_bad_input_value_exits_2_naming_it(self, cli: Cli) -> None:
        """A value failing its schema exits 2 with one line naming the input, and no run."""
        done = cli("run", _three(cli), "-i", "count=many")
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.strip().splitlines() == [
            "error: input count: 'many' is not of type 'integer'"
        ]
        assert cli.json("list", "--json") == []

    def test_unknown_and_malformed_inputs_exit_2(self, cli: Cli) -> None:
        """An input the saga lacks and a pair without `=` each exit 2 with one line."""
        unknown = cli("run", _three(cli), "-i", "colour=red")
        malformed = cli("run", _three(cli), "-i", "count")
        assert (unknown.returncode, malformed.returncode) == (2, 2)
        assert "--input colour" in unknown.stderr and "Traceback" not in unknown.stderr
        assert "expected NAME=VALUE" in malformed.stderr

    def test_input_error_inside_the_saga_exits_2(self, cli: Cli) -> None:
        """An action raising InputError compensates the run and the CLI exits 2."""
        done = cli("run", _three(cli, bad=True))
        assert done.returncode == 2, done.stderr
        status = cli.json("status", done.stdout.strip(), "--json")
        assert status["state"] == "compensated"
        assert status["actions"]["a"]["state"] == "compensated"
        assert "Traceback" not in done.stderr

    def test_failed_saga_exits_1(self, cli: Cli) -> None:
        """A failing action compensates the completed ones; exit 1 and one error line."""
        done = cli("run", _three(cli, fail=True))
        assert done.returncode == 1
        assert "undo:a" in cli.lines()
        assert f"error: run {done.stdout.strip()} compensated at b" in done.stderr

    def test_fault_error_compensates(self, cli: Cli) -> None:
        """--fault c:error fails c, so a is compensated and the run exits 1."""
        done = cli("run", _three(cli), "--fault", "c:error")
        assert done.returncode == 1
        status = cli.json("status", done.stdout.strip(), "--json")
        assert status["state"] == "compensated"
        assert status["actions"]["c"]["state"] == "failed"
        assert "injected error" in status["actions"]["c"]["error"]

    def test_fault_crash_ends_the_process_then_resume_finishes(self, cli: Cli) -> None:
        """--fault b:crash ends the process (exit 75) mid-run; resume finishes it."""
        done = cli("run", _three(cli), "--fault", "b:crash")
        assert done.returncode == 75
        run_id = done.stdout.strip()
        assert cli.json("status", run_id, "--json")["state"] == "running"
        resumed = cli("resume", run_id)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout == f"{run_id} succeeded\n"
        assert cli.lines().count("a") == 1

    def test_bad_fault_specs_exit_2(self, cli: Cli) -> None:
        """A malformed --fault and one naming no action of the saga each exit 2."""
        bad = cli("run", _three(cli), "--fault", "b:explode")
        unknown = cli("run", _three(cli), "--fault", "zz:error")
        assert (bad.returncode, unknown.returncode) == (2, 2)
        assert "b:explode" in bad.stderr and "'zz'" in unknown.stderr

    def test_detach_leaves_the_run_queued(self, cli: Cli) -> None:
        """--detach creates the run queued and runs nothing; resume --all runs it."""
        done = cli("run", _three(cli), "--detach")
        assert done.returncode == 0
        run_id = done.stdout.strip()
        assert cli.json("status", run_id, "--json")["state"] == "queued"
        assert cli.lines() == []
        assert cli("resume", "--all").stdout == f"{run_id} succeeded\n"

    def test_bad_db_prints_no_run_id(self, cli: Cli) -> None:
        """A --db the store cannot use exits 2 before any run id is printed."""
        done = cli("run", _three(cli), "--db", "mysql://x")
        assert (done.returncode, done.stdout) == (2, "")
        assert "unknown database URL scheme 'mysql'" in done.stderr

    def test_unknown_saga_exits_2(self, cli: Cli) -> None:
        """A saga name nothing defines exits 2 with one line."""
        done = cli("run", "no-such-saga")
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1


class TestStatus:
    def test_json_shape(self, cli: Cli) -> None:
        """status --json has run_id, saga, state and per action state/attempts/error/outputs."""
        run_id = cli("run", _three(cli)).stdout.strip()
        status = cli.json("status", run_id, "--json")
        assert {"run_id", "saga", "state", "actions"} <= set(status)
        assert (status["run_id"], status["saga"], status["state"]) == (run_id, "three", "succeeded")
        assert set(status["actions"]) == {"a", "b", "c"}
        a = status["actions"]["a"]
        assert set(a) == {"state", "attempts", "error", "outputs"}
        assert (a["state"], a["attempts"], a["error"], a["outputs"]["name"]) == (
            "succeeded",
            1,
            None,
            "a",
        )

    def test_table_for_people(self, cli: Cli) -> None:
        """Without --json, a header line and one table row per action."""
        run_id = cli("run", _three(cli)).stdout.strip()
        done = cli("status", run_id)
        assert done.stdout.splitlines()[0].split() == ["run", run_id, "saga", "three", "succeeded"]
        assert re.search(r"\bb\s.*succeeded\s.*\b1\b", done.stdout)

    def test_unknown_run_exits_2(self, cli: Cli) -> None:
        """An unknown run id exits 2 with one line and no traceback."""
        for command in (
            ["status", "nope"],
            ["logs", "nope"],
            ["resume", "nope"],
            ["cancel", "nope"],
            ["abandon", "nope"],
            ["graph", "--run", "nope"],
        ):
            done = cli(*command)
            assert done.returncode == 2, command
            assert done.stderr.strip().splitlines() == [f"error: no run 'nope' in {cli.db}"], (
                command
            )


class TestList:
    def test_oldest_first_with_state_filter_and_limit(self, cli: Cli) -> None:
        """list --json: oldest first, filtered by --state, cut by --limit."""
        ok = cli("run", _three(cli)).stdout.strip()
        failed = cli("run", _three(cli, fail=True)).stdout.strip()
        rows = cli.json("list", "--json")
        assert [r["run_id"] for r in rows] == [ok, failed]
        assert {"run_id", "saga", "state", "started", "finished"} <= set(rows[0])
        assert rows[0]["started"] <= rows[0]["finished"]
        assert [r["run_id"] for r in cli.json("list", "--json", "--state", "compensated")] == [
            failed
        ]
        assert [r["run_id"] for r in cli.json("list", "--json", "--limit", "1")] == [ok]

    def test_bad_state_exits_2(self, cli: Cli) -> None:
        """An unknown --state is a usage error: exit 2."""
        assert cli("list", "--state", "happy").returncode == 2


class TestLogs:
    def test_events_oldest_first(self, cli: Cli) -> None:
        """logs prints every event in sequence order, from run_created to run_finished."""
        run_id = cli("run", _three(cli)).stdout.strip()
        lines = cli("logs", run_id).stdout.splitlines()
        seqs = [int(line.split()[0]) for line in lines]
        assert seqs == sorted(seqs) and seqs[0] == 1
        assert "run_created" in lines[0] and "run_finished" in lines[-1]
        as_json = [json.loads(x) for x in cli("logs", run_id, "--json").stdout.splitlines()]
        assert [e["seq"] for e in as_json] == seqs

    def test_follow_ends_with_the_run(self, cli: Cli) -> None:
        """logs -f on a running run prints events as they come and stops when it finishes."""
        hold = cli.tmp / "hold"
        hold.touch()
        proc = cli.start("run", str(cli.saga("held", {"a": {"hold": str(hold)}})))
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        follower = cli.start("logs", run_id, "-f")
        from .conftest import wait_for

        wait_for(lambda: "start:a" in cli.lines(), "a to start")
        hold.unlink()
        assert proc.wait(timeout=30) == 0
        assert follower.wait(timeout=30) == 0
        assert follower.stdout is not None
        assert "run_finished" in follower.stdout.read().splitlines()[-1]


class TestCancelAbandon:
    def test_cancel_a_queued_run_compensates_it(self, cli: Cli) -> None:
        """cancel on a run nobody holds ends it cancelled and exits 0."""
        run_id = cli("run", _three(cli), "--detach").stdout.strip()
        done = cli("cancel", run_id)
        assert (done.returncode, done.stdout) == (0, f"{run_id} cancelled\n")
        again = cli("cancel", run_id)
        assert (
            again.returncode == 2
            and "has already finished (cancelled): nothing to cancel" in again.stderr
        )

    def test_cancel_a_live_run(self, cli: Cli) -> None:
        """cancel on a run another process drives: that process compensates and exits 1."""
        hold = cli.tmp / "hold"
        hold.touch()
        path = cli.saga("held", {"a": {}, "b": {"needs": ["a"], "hold": str(hold)}})
        proc = cli.start("run", str(path))
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        from .conftest import wait_for

        wait_for(lambda: "start:b" in cli.lines(), "b to start")
        assert cli("cancel", run_id).returncode == 0
        assert proc.wait(timeout=30) == 1
        assert cli.json("status", run_id, "--json")["state"] == "cancelled"
        assert "undo:a" in cli.lines()

    def test_abandon(self, cli: Cli) -> None:
        """abandon ends an unfinished run abandoned, its pending actions skipped."""
        run_id = cli("run", _three(cli), "--detach").stdout.strip()
        assert cli("abandon", run_id).stdout == f"{run_id} abandoned\n"
        status = cli.json("status", run_id, "--json")
        assert {a["state"] for a in status["actions"].values()} == {"skipped"}
        assert cli("abandon", run_id).returncode == 2


class TestStuck:
    def test_stuck_run_exits_1_and_is_abandoned(self, cli: Cli) -> None:
        """A compensation that fails ends the run stuck (exit 1); cancel refuses it, logs
        -f returns, abandon ends it."""
        path = cli.saga("stuck", {"a": {"undo_fail": True}, "b": {"needs": ["a"], "fail": True}})
        done = cli("run", str(path))
        run_id = done.stdout.strip()
        assert done.returncode == 1
        assert f"error: run {run_id} stuck" in done.stderr
        assert cli.json("status", run_id, "--json")["state"] == "stuck"
        assert "run_stuck" in cli("logs", run_id, "-f", timeout=20).stdout
        cancel = cli("cancel", run_id)
        assert cancel.returncode == 2 and "stuck: resume or abandon it" in cancel.stderr
        assert cli("abandon", run_id).stdout == f"{run_id} abandoned\n"
        assert cli.json("list", "--json", "--state", "abandoned")[0]["run_id"] == run_id


class TestResumeUsage:
    def test_run_or_all(self, cli: Cli) -> None:
        """resume needs exactly one of RUN and --all (exit 2 otherwise)."""
        assert cli("resume").returncode == 2
        assert cli("resume", "x", "--all").returncode == 2
        assert (cli("resume", "--all").returncode, cli("resume", "--all").stdout) == (0, "")


class TestPruneAndDb:
    def test_prune_deletes_finished_runs_only(self, cli: Cli) -> None:
        """prune --older-than 0 deletes finished runs, keeps unfinished ones."""
        cli("run", _three(cli))
        queued = cli("run", _three(cli), "--detach").stdout.strip()
        done = cli("prune", "--older-than", "0s", "--page-size", "1")
        assert (done.returncode, done.stdout) == (0, "pruned 1 run\n")
        assert [r["run_id"] for r in cli.json("list", "--json")] == [queued]
        assert cli("prune").stdout == "pruned 0 runs\n"

    def test_bad_age_exits_2(self, cli: Cli) -> None:
        """An age that is not NUMBER[smhdw] exits 2 naming it."""
        done = cli("prune", "--older-than", "soon")
        assert done.returncode == 2 and "'soon'" in done.stderr

    def test_db_upgrade(self, cli: Cli) -> None:
        """db upgrade creates the schema and prints each namespace's version."""
        done = cli("db", "upgrade")
        assert done.returncode == 0, done.stderr
        assert "engine v15" in done.stdout

    def test_bad_db_url_exits_2(self, cli: Cli) -> None:
        """An unknown URL scheme exits 2 with one line."""
        done = cli("list", "--db", "mysql://x")
        assert done.returncode == 2 and "unknown database URL scheme" in done.stderr


class TestGraphRun:
    def test_states_coloured(self, cli: Cli) -> None:
        """graph --run draws the pinned saga with each action's state and its colour."""
        run_id = cli("run", _three(cli, fail=True)).stdout.strip()
        text = cli("graph", "--run", run_id)
        assert text.returncode == 0, text.stderr
        assert re.search(r"\ba\s+compensated\b", text.stdout)
        assert re.search(r"\bb\s+failed\b", text.stdout)
        dot = cli("graph", "--run", run_id, "--format", "dot").stdout
        data = json.loads(cli("graph", "--run", run_id, "--format", "json").stdout)
        states = {n["id"]: n["state"] for n in data["nodes"]}
        assert states == {"a": "compensated", "b": "failed", "c": states["c"]}
        # Failed red, and each node filled with its state's colour.
        assert re.search(r'"b" \[label="b\\nclitest.append\\n\[failed\]", fillcolor="#f8d7da"', dot)
        assert '[compensated]", fillcolor="#f2f2f2"' not in dot

    def test_graph_needs_a_saga_or_a_run(self, cli: Cli) -> None:
        """graph with neither NAME|FILE nor --run exits 2."""
        assert cli("graph").returncode == 2
