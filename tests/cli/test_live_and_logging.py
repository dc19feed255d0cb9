"""The live view (rich on a terminal, plain lines elsewhere) and the CLI's structlog setup."""

from __future__ import annotations

import json
import logging
import re
import subprocess

import pytest
from sagactl.engine.cli.logging import level_for
from sagactl.engine.settings import LOG_LEVEL, LOG_LEVELS

from .conftest import SAGACTL, Cli, on_terminal


def _saga(cli: Cli) -> str:
    return str(cli.saga("pair", {"first": {}, "second": {"needs": ["first"], "sleep": 0.2}}))


class TestLiveView:
    def test_terminal_gets_bars_per_action(self, cli: Cli) -> None:
        """With stderr on a terminal: one redrawn line per action, its state, time and bar."""
        screen = on_terminal(["run", _saga(cli)], cli.env)
        assert screen.code == 0
        run_id = screen.stdout.strip()
        text = screen.raw
        assert "\x1b[" in text  # redrawn in place, with colour
        final = screen.lines()
        assert any(re.match(r"^second\s+succeeded\s+━+\s+0:00:0\d", line) for line in final)
        assert any(re.match(r"^first\s+succeeded\s+━+", line) for line in final)
        assert run_id not in text  # the id is on stdout only

    def test_pipe_gets_one_plain_line_per_transition(self, cli: Cli) -> None:
        """With stderr not a terminal: plain lines, one per transition, no escape codes."""
        done = cli("run", _saga(cli))
        run_id = done.stdout.strip()
        assert "\x1b[" not in done.stderr
        assert done.stderr.splitlines() == [
            f"{run_id} running",
            f"{run_id} first running (attempt 1)",
            f"{run_id} first succeeded",
            f"{run_id} second running (attempt 1)",
            f"{run_id} second succeeded",
            f"{run_id} succeeded",
        ]

    def test_quiet(self, cli: Cli) -> None:
        """-q leaves stderr empty."""
        assert cli("run", "-q", _saga(cli)).stderr == ""


class TestLogging:
    """One style per stream: stderr of a command people run carries people's lines only."""

    def test_verbose_logs_lines_for_people_with_the_action(self, cli: Cli) -> None:
        """-v logs each transition as a `info: [action] event` line, never JSON."""
        done = cli("-v", "run", "-q", _saga(cli))
        lines = done.stderr.splitlines()
        assert lines and all(line.startswith("info: ") for line in lines), lines
        assert "info: [second] action_started" in [line.split(" (")[0] for line in lines]
        assert not [line for line in lines if _is_json(line)]

    def test_levels_are_the_logging_modules(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Our level numbers (kept without importing `logging`) are `logging`'s own."""
        for name in LOG_LEVELS:
            monkeypatch.setenv(LOG_LEVEL.name, name)
            assert level_for(0) == getattr(logging, name.upper())
        assert (level_for(1), level_for(2)) == (logging.INFO, logging.DEBUG)

    def test_level_from_the_environment(self, cli: Cli) -> None:
        """SAGACTL_LOG_LEVEL=info does what -v does; the default logs nothing on success."""
        env = {**cli.env, "SAGACTL_LOG_LEVEL": "info"}
        done = subprocess.run(
            [SAGACTL, "run", "-q", _saga(cli)], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0
        assert done.stderr.splitlines()[0].startswith("info: run_started")
        assert cli("run", "-q", _saga(cli)).stderr == ""

    def test_a_failed_action_is_reported_once(self, cli: Cli) -> None:
        """A failing action is the `error:` line alone (its warning would repeat it)."""
        path = cli.saga("bad", {"x": {"fail": True}})
        done = cli("run", "-q", str(path))
        assert done.returncode == 1
        [line] = done.stderr.splitlines()
        assert line.startswith("error: run ") and "x failed on purpose" in line

    def test_live_view_and_warnings_share_one_style(self, cli: Cli) -> None:
        """With the live view on a pipe, no line of stderr is JSON."""
        path = cli.saga("bad", {"x": {"fail": True}, "y": {}})
        done = cli("-v", "run", str(path))
        assert done.returncode == 1
        assert done.stderr and not [line for line in done.stderr.splitlines() if _is_json(line)]


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
