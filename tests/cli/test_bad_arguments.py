"""Issue 10 item 15: bad arguments and settings, for every command, are one `error:` line.

Each case runs the real `sagactl` and asserts exit code 2, exactly one line on stderr
starting with `error:` (holding the expected words), nothing on stdout, no traceback,
and no run created. To grow the catalogue, add a `Bad` to ARGUMENTS, a setting to
SETTINGS, or a command to COMMANDS.
"""

from __future__ import annotations

import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import SAGACTL, Cli

LONG = "r" * 5000
NESTED = "[" * 30_000 + "]" * 30_000


@dataclass(frozen=True)
class Bad:
    """One bad invocation; `{tmp}` in an argument is the test's folder, `{saga}` a saga file
    with inputs `n` (integer) and `any` (no type)."""

    args: tuple[str, ...]
    says: str
    env: dict[str, str] = field(default_factory=dict)
    starts: str = "error: "
    """How the line starts: `validate` prints `FILE:LINE:COL: ...` instead (README)."""

    def __str__(self) -> str:
        shown = " ".join(a if len(a) < 40 else a[:20] + "..." for a in self.args)
        extra = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"{extra} {shown}".strip()


ARGUMENTS = [
    Bad(("list", "--limit", "99999999999999999999"), "Invalid value for '--limit'"),
    Bad(("list", "--limit", "0"), "Invalid value for '--limit'"),
    Bad(("list", "--state", "bogus"), "Invalid value for '--state'"),
    Bad(("graph", "{saga}", "-o", "{tmp}/missing/x.txt"), "No such file or directory"),
    Bad(("graph", "{saga}", "--format", "bogus"), "Invalid value for '--format'"),
    Bad(("graph", "no-such-saga"), "no saga named 'no-such-saga'"),
    Bad(("graph",), "give NAME|FILE or --run RUN"),
    Bad(("schema", "-o", "{tmp}/missing/s.json"), "No such file or directory"),
    Bad(("run", "{saga}", "--input", f"any={NESTED}"), "--input any: nested deeper than 64"),
    Bad(("run", "{saga}", "--input", "n=NaN"), "--input n: NaN is not a JSON number"),
    Bad(("run", "{saga}", "--input", "n=1e999"), "--input n: 1e999 is beyond the range"),
    Bad(("run", "{saga}", "--input", "n"), "expected NAME=VALUE"),
    Bad(("run", "{saga}", "--input", "n=x"), "input n: 'x' is not of type 'integer'"),
    Bad(("run", "{saga}", "--fault", "bogus"), "fault 'bogus'"),
    Bad(("run", "{tmp}/missing.yaml"), "no such file"),
    Bad(("status", "nope"), "no run 'nope'"),
    Bad(("status", LONG), "no run 'rrrr"),
    Bad(("logs", "nope"), "no run 'nope'"),
    Bad(("cancel", "nope"), "no run 'nope'"),
    Bad(("abandon", "nope"), "no run 'nope'"),
    Bad(("resume", "nope"), "no run 'nope'"),
    Bad(("resume",), "give one of RUN, --all or --filter"),
    Bad(("resume", "r", "--all"), "give one of RUN, --all or --filter"),
    Bad(("resume", "--all", "--yes"), "--yes and --dry-run go with --filter"),
    # Issue 13: retry, fork, pause, unpause and bulk actions by filter.
    Bad(("retry", "nope"), "no run 'nope'"),
    Bad(("retry",), "give either RUN or --filter"),
    Bad(("pause", "nope"), "no run 'nope'"),
    Bad(("pause",), "give either RUN or --filter"),
    Bad(("pause", "--saga", "x", "--filter", "saga=x"), "give --saga or --filter, not both"),
    Bad(("pause", "r", "--saga", "x"), "give either RUN or --filter"),
    Bad(("unpause", "nope"), "no run 'nope'"),
    Bad(("unpause",), "give either RUN or --filter"),
    Bad(("unpause", "r", "--filter", "state=paused"), "give either RUN or --filter"),
    Bad(("unpause", "r", "--yes"), "--yes and --dry-run go with --filter"),
    Bad(("unpause", "--filter", "state=nope"), "no state 'nope'"),
    Bad(("run", "{saga}", "--from", "nope"), "no run 'nope'"),
    Bad(("cancel",), "give either RUN or --filter"),
    Bad(("cancel", "r", "--filter", "state=stuck"), "give either RUN or --filter"),
    Bad(("cancel", "r", "--yes"), "--yes and --dry-run go with --filter"),
    Bad(("abandon", "r", "--dry-run"), "--yes and --dry-run go with --filter"),
    Bad(("cancel", "--filter", "bogus"), "--filter 'bogus': expected KEY=VALUE terms"),
    Bad(("cancel", "--filter", ""), "--filter '': expected KEY=VALUE terms"),
    Bad(("cancel", "--filter", "state=stuck,"), "expected KEY=VALUE terms"),
    Bad(("cancel", "--filter", "state=bogus"), "no state 'bogus' (states: queued"),
    Bad(("retry", "--filter", "state=stuck|"), "no state ''"),
    Bad(("abandon", "--filter", "colour=red"), "unknown key 'colour' (keys: saga, state, before)"),
    Bad(("resume", "--filter", "before=soon"), "before=soon: expected a duration"),
    Bad(("pause", "--filter", "before=-1d"), "before=-1d: expected a duration"),
    Bad(("cancel", "--filter", "saga=a,saga=b"), "two sagas (a, b)"),
    Bad(("prune", "--older-than", "nan"), "--older-than 'nan'"),
    Bad(("prune", "--older-than", "-5"), "--older-than '-5'"),
    Bad(("prune", "--page-size", "99999999999999999999"), "Invalid value for '--page-size'"),
    Bad(("worker", "--poll", "nan"), "'nan' is not a finite number"),
    Bad(("worker", "--grace", "inf"), "Invalid value for '--grace'"),
    Bad(("worker", "--grace", "nan"), "'nan' is not a finite number"),
    Bad(("worker", "--concurrency", "0"), "Invalid value for '--concurrency'"),
    Bad(
        ("validate", "{tmp}/binary.yaml"),
        "binary.yaml: invalid YAML: unacceptable character",
        starts="{tmp}/",
    ),
    Bad(
        ("validate", "{tmp}/ref.yaml"),
        "ref.yaml:5:13: inputs.x.$ref: $ref '#/$defs/missing' cannot be resolved",
        starts="{tmp}/",
    ),
    Bad(("run", "{tmp}/ref.yaml"), "ref.yaml:5:13: inputs.x.$ref: $ref '#/$defs/missing'"),
    Bad(("app", "show", "unknown"), "no app named 'unknown'"),
    Bad(("app", "show"), "Missing argument 'NAME'"),
    Bad(("db", "bogus"), "No such command 'bogus'"),
    Bad(("--bogus", "list"), "No such option '--bogus'"),
    Bad(("build", "myapp", "{tmp}/missing.tar"), "no such file"),
    Bad(("build", "myapp", "{tmp}/app.tar", "--builder", "nope"), "no builder named 'nope'"),
    Bad(
        ("build", "myapp", "{tmp}/app.tar"), "no builder named 'nope'", {"SAGACTL_BUILDER": "nope"}
    ),
]

SETTINGS = {
    "SAGACTL_MAX_UPLOAD_BYTES": ["abc", "-5", "nan", "inf", "1e3", "99999999999999999999"],
    "SAGACTL_MAX_MEMBERS": ["abc", "0"],
    "SAGACTL_STOP_GRACE": ["abc", "-5", "nan", "inf", "1e999"],
    "SAGACTL_LEASE": ["abc", "-5", "0", "nan", "inf"],
    "SAGACTL_BUILD_DIR": ["/dev/null/x", "/proc/version/build"],
    "SAGACTL_LOG_LEVEL": ["loud"],
    "SAGACTL_CLUSTER_STRICT": ["maybe"],
    "SAGACTL_FAULTS": ["bogus", "a:delay=nan"],
}

ENGINE_SETTINGS = {"SAGACTL_LEASE", "SAGACTL_LOG_LEVEL", "SAGACTL_FAULTS"}

COMMANDS = [
    ("validate", "{saga}"),
    ("schema",),
    ("graph", "{saga}"),
    ("actions",),
    ("run", "{saga}", "--input", "n=1"),
    ("run", "{saga}", "--input", "n=1", "--detach"),
    ("status", "r"),
    ("list",),
    ("logs", "r"),
    ("resume", "--all"),
    ("cancel", "r"),
    ("cancel", "--filter", "state=stuck", "--yes"),
    ("abandon", "r"),
    ("retry", "r"),
    ("pause", "r"),
    ("unpause", "r"),
    ("prune",),
    ("stats",),
    ("db", "upgrade"),
    ("worker",),
    ("build", "myapp", "{tmp}/app.tar"),
    ("app", "show", "myapp"),
    ("app", "start", "myapp"),
]


def _setting_cases() -> list[Bad]:
    """Every bad value of every setting; every command with one of them. The build
    package's settings are checked by the commands that load it (`actions` loads the
    action plugins), not by `list` or `validate`, which start without importing it
    (`validate` reads the actions' cached descriptions)."""
    cases = [
        Bad(
            ("list",) if name in ENGINE_SETTINGS else ("actions",),
            f"${name}={value!r}: ",
            {name: value},
        )
        for name, values in SETTINGS.items()
        for value in values
    ]
    cases += [Bad(command, "$SAGACTL_LEASE='-5'", {"SAGACTL_LEASE": "-5"}) for command in COMMANDS]
    return cases


@pytest.fixture
def files(cli: Cli) -> dict[str, str]:
    saga = cli.saga("bad-args", {"a": {}}, n={"type": "integer"}, any={})
    (cli.tmp / "binary.yaml").write_bytes(b"\x00\x01 not yaml")
    (cli.tmp / "ref.yaml").write_text(
        "apiVersion: sagactl/v1\nkind: Saga\nmetadata: {name: ref, version: 1}\n"
        "inputs:\n  x: {$ref: '#/$defs/missing'}\n"
        "actions:\n  a: {uses: clitest.append, with: {file: f, name: a}}\n"
    )
    (cli.tmp / "app.tar").write_bytes(b"\0" * 1024)
    return {"saga": str(saga), "tmp": str(cli.tmp)}


def _check(cli: Cli, files: dict[str, str], bad: Bad) -> None:
    done = subprocess.run(
        [SAGACTL, *(arg.format(**files) for arg in bad.args)],
        env={**cli.env, **bad.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(bad.starts.format(**files)) and bad.says in lines[0], lines[0]
    assert (done.returncode, done.stdout) == (2, "")
    assert _runs(cli.db) == 0


def _runs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
        except sqlite3.OperationalError:  # no tables: nothing was created
            return 0


@pytest.mark.parametrize("bad", ARGUMENTS, ids=str)
def test_bad_argument(cli: Cli, files: dict[str, str], bad: Bad) -> None:
    """A bad argument: one `error:` line naming it, exit 2, no traceback, no run."""
    _check(cli, files, bad)


@pytest.mark.parametrize("bad", _setting_cases(), ids=str)
def test_bad_setting(cli: Cli, files: dict[str, str], bad: Bad) -> None:
    """A bad setting stops every command at start-up: one line naming the variable."""
    _check(cli, files, bad)
