"""Start-up of the commands a user types all day, against the bare interpreter, in one run.

Each round runs `python -c pass` and then the real console script, as new processes, so
both meet the same machine. Ratios (issue 14): `--version` <= 3x, `status RUN` and `list`
<= 5x, `validate FILE` <= 8x; `logs RUN`, which reads the store as `status` does, <= 5x.

    .venv/bin/pytest benchmarks/test_startup.py --benchmark-only

The commands run as an installed sagactl runs: with the bytecode of our modules cached
(pip compiles it when it installs a wheel). `PYTHONDONTWRITEBYTECODE`, if the caller has
it, is dropped for them, or every start would compile ~200 modules of ours from source
and the figure would measure the compiler; the first (warm-up) runs write the bytecode.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .pairing import paired

SAGACTL = str(Path(sys.executable).with_name("sagactl"))
DEFINITION = Path(__file__).resolve().parents[1] / "definitions" / "build-from-tar.yaml"
ROUNDS = 15


def _quiet(args: list[str], env: dict[str, str]) -> None:
    subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store holding one queued run (for `status`), and a warm entry-point cache."""
    folder = tmp_path_factory.mktemp("startup")
    dropped = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
    environ = {k: v for k, v in os.environ.items() if k not in dropped}
    environ.update(SAGACTL_DB=f"sqlite:///{folder / 'runs.db'}", XDG_CACHE_HOME=str(folder))
    saga = folder / "one.yaml"
    saga.write_text(
        "apiVersion: sagactl/v1\nkind: Saga\nmetadata: {name: one, version: 1}\n"
        "actions:\n  next: {uses: build.get_next_version, with: {app: bench}}\n"
    )
    run = subprocess.run(
        [SAGACTL, "run", "--detach", str(saga)],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    environ["STARTUP_RUN"] = run.stdout.strip()
    assert environ["STARTUP_RUN"], run.stderr
    # The caches (entry points, the actions' descriptions) and the bytecode are written by
    # the first processes.
    _quiet([SAGACTL, "list"], environ)
    _quiet([SAGACTL, "validate", str(DEFINITION)], environ)
    _quiet([SAGACTL, "status", environ["STARTUP_RUN"]], environ)
    return environ


@pytest.mark.parametrize(
    ("key", "args"),
    [
        ("version", ["--version"]),
        ("status", ["status", "{run}"]),
        ("list", ["list"]),
        ("logs", ["logs", "{run}"]),
        ("validate", ["validate", str(DEFINITION)]),
    ],
)
def test_startup(benchmark: object, env: dict[str, str], key: str, args: list[str]) -> None:
    command = [SAGACTL, *(arg.format(run=env["STARTUP_RUN"]) for arg in args)]
    paired(
        benchmark,
        lambda: _quiet(command, env),
        lambda: _quiet([sys.executable, "-c", "pass"], env),
        key=f"startup_{key}",
        units=1,
        baseline_key=f"startup_pass_{key}",
        baseline_units=1,
        rounds=ROUNDS,
    )
