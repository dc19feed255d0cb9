"""The real installed `sagactl`, a fresh SQLite file per test and the clitest actions.

`clitest.append` comes from the `clitest-actions` distribution in `plugin/` (a dist-info
next to its package): putting that folder on PYTHONPATH installs it as far as entry
points go, with no pip run.
"""

from __future__ import annotations

import json
import os
import pty
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SAGACTL = str(Path(sys.executable).with_name("sagactl"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""An ANSI escape sequence (colours, cursor moves) in what a terminal was sent."""


@dataclass(frozen=True)
class Screen:
    """What `sagactl ARGS` wrote to a terminal on its stderr, and to its stdout."""

    code: int
    raw: str
    stdout: str

    def lines(self) -> list[str]:
        """The terminal's text, escapes dropped, each redraw (`\\r`) a line of its own."""
        return ANSI.sub("", self.raw).replace("\r", "\n").splitlines()


def on_terminal(args: list[str], env: dict[str, str], timeout: float = 30) -> Screen:
    """Run the real CLI with stderr on a pseudo-terminal (the live view draws bars)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [SAGACTL, *args],
        env={**env, "TERM": "xterm-256color"},
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed its end
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    code = proc.wait(timeout=timeout)
    assert proc.stdout is not None
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    return Screen(code, screen.decode(), stdout)


PLUGIN = Path(__file__).with_name("plugin")


@dataclass
class Cli:
    """`sagactl` run for real against `db`, with effects appended to `out`."""

    tmp: Path
    db: Path
    out: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("SAGACTL_FAULTS", "PYTHONPATH")}
        env.update(PYTHONPATH=str(PLUGIN), SAGACTL_DB=f"sqlite://{self.db}", COLUMNS="200")
        return env

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SAGACTL, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`sagactl ARGS` in the background (stdout piped, stderr to a file)."""
        with (self.tmp / f"stderr-{len(self.procs)}.txt").open("w") as stderr:
            proc = subprocess.Popen(
                [SAGACTL, *args], env=self.env, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """Kill what is still running (a failed test) and close the pipes."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def json(self, *args: str) -> Any:
        done = self(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def saga(self, name: str, actions: dict[str, dict[str, Any]], **inputs: Any) -> Path:
        """A saga file of clitest.append actions, each appending to `out`."""
        body: dict[str, Any] = {
            "apiVersion": "sagactl/v1",
            "kind": "Saga",
            "metadata": {"name": name, "version": 1},
            "inputs": {"file": {"type": "string", "default": str(self.out)}, **inputs},
            "defaults": {"retry": {"attempts": 1}},
            "actions": {},
        }
        for action, spec in actions.items():
            needs = spec.pop("needs", [])
            body["actions"][action] = {
                "uses": "clitest.append",
                "with": {"file": "${{ inputs.file }}", "name": action, **spec},
                **({"needs": needs} if needs else {}),
            }
        path = self.tmp / f"{name}.yaml"
        path.write_text(json.dumps(body, indent=2))  # JSON is YAML
        return path

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines() if self.out.exists() else []

    def events(self, run_id: str) -> list[tuple[str, str | None]]:
        """(kind, action) of the run's log, read straight from the SQLite file."""
        if not self.db.exists():
            return []
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            rows = conn.execute(
                "SELECT kind, action FROM run_log WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []
        finally:
            conn.close()
        return [(kind, action) for kind, action in rows]

    def integrity(self) -> str:
        conn = sqlite3.connect(self.db)
        try:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            conn.close()


def wait_for(condition: Callable[[], bool], what: str, deadline: float = 20.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path, tmp_path / "runs.db", tmp_path / "effects.txt")
    yield runner
    runner.close()
