"""The outside view: `sagactl run` as a new user meets it, a new process with stderr on a
terminal (the live view) or on a pipe, over a saga of a third-party plugin's actions.

The plugin is a distribution of its own, made in a temporary folder on PYTHONPATH (a
`.dist-info` with its entry point and one module), so the real CLI finds it as it finds
any installed plugin. A run is timed by its own stamps (first record to last, what the
engine did) and by the process's wall time (start-up, compilation and the live view too).
"""

from __future__ import annotations

import fcntl
import os
import pty
import sqlite3
import struct
import subprocess
import sys
import termios
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

SAGACTL = str(Path(sys.executable).with_name("sagactl"))
USES = "bench.checked_noop"

_PLUGIN = '''
"""A third-party plugin for the benchmarks: one no-op action with closed schemas."""
from sagactl.engine import Action

DRAFT = "https://json-schema.org/draft/2020-12/schema"


class CheckedNoop(Action):
    """Does nothing; its inputs and outputs are checked against closed schemas."""

    input_schema = {
        "$schema": DRAFT, "type": "object", "properties": {"prev": {"type": "boolean"}},
        "required": [], "additionalProperties": False,
    }
    output_schema = {
        "$schema": DRAFT, "type": "object", "properties": {"done": {"type": "boolean"}},
        "required": ["done"], "additionalProperties": False,
    }

    async def execute(self, ctx, inputs):
        return {"done": len(inputs) >= 0}
'''


def install_plugin(folder: Path) -> Path:
    """The plugin's distribution in `folder` (put it on PYTHONPATH); returns `folder`."""
    info = folder / "bench_checked_noop-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bench-checked-noop\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[sagactl.actions]\n{USES} = bench_checked_noop:CheckedNoop\n"
    )
    (folder / "bench_checked_noop.py").write_text(textwrap.dedent(_PLUGIN))
    return folder


def saga_file(folder: Path, name: str, size: int, *, chained: bool) -> Path:
    """A saga of `size` plugin actions, each using the one before (`chained`) or none."""
    lines = ["apiVersion: sagactl/v1", "kind: Saga", f"metadata: {{name: {name}, version: 1}}"]
    lines.append("actions:")
    for i in range(size):
        uses = f"  a{i:03d}: {{uses: {USES}"
        if chained and i:
            uses += f', with: {{prev: "${{{{ actions.a{i - 1:03d}.outputs.done }}}}"}}'
        lines.append(uses + "}")
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True, slots=True)
class Outside:
    """One `sagactl run`: its exit code, process wall time and the run's own span."""

    code: int
    wall: float
    stamps: float
    records: int


def run_outside(saga: Path, db: Path, env: dict[str, str], *, terminal: bool) -> Outside:
    """`sagactl run SAGA` with stderr on a pseudo-terminal (24x100) or a pipe."""
    args = [SAGACTL, "run", str(saga), "--db", f"sqlite:///{db}"]
    start = time.perf_counter()
    if terminal:
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        proc = subprocess.Popen(
            args, env={**env, "TERM": "xterm-256color"}, stdout=subprocess.PIPE, stderr=follower
        )
        os.close(follower)
        while True:  # drain the terminal, as a terminal would
            try:
                if not os.read(leader, 65536):
                    break
            except OSError:
                break
        os.close(leader)
        assert proc.stdout is not None
        run_id = proc.stdout.read().decode().strip()
        proc.stdout.close()
        code = proc.wait()
    else:
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        code, run_id = done.returncode, done.stdout.strip()
    wall = time.perf_counter() - start
    with sqlite3.connect(db) as conn:
        first, last, count = conn.execute(
            "SELECT min(at), max(at), count(*) FROM run_log WHERE run_id = ?", (run_id,)
        ).fetchone()
    return Outside(code, wall, float(last - first) if count else 0.0, int(count))
