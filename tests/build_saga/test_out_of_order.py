"""Concurrent builds of one app, as real processes (issue 10 item 8, issue 12 item 6).

The rule: the active version is the highest number, that is the last build submitted.
The build saga's concurrency key (`inputs.app`) makes builds of one app take turns in
submission order, so each activates after the one before it and the last submitted is
left active; the records still refuse to move activation backwards (`test_records`).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tars import tar_of_dir

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAGACTL = str(Path(sys.executable).with_name("sagactl"))


def _version_allocated(db: Path, count: int) -> bool:
    """True once `count` builds have their version number (get_next_version succeeded)."""
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            rows = conn.execute(
                "SELECT count(*) FROM run_log WHERE kind = 'action_succeeded'"
                " AND action = 'get_next_version'"
            ).fetchone()
    except sqlite3.OperationalError:  # not migrated yet
        return False
    return int(rows[0]) >= count


def _wait(condition: object, what: str, deadline: float = 90.0) -> None:
    end = time.monotonic() + deadline
    while not condition():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _keyed_runs(db: Path) -> list[tuple[str, int, str]]:
    """(run id, place on the app's key, version it was given) of every build, by place."""
    with sqlite3.connect(db, timeout=10) as conn:
        rows = conn.execute(
            "SELECT r.run_id, r.key_seq, l.data FROM runs r JOIN run_log l"
            " ON l.run_id = r.run_id AND l.kind = 'action_succeeded'"
            " AND l.action = 'get_next_version' ORDER BY r.key_seq"
        ).fetchall()
    return [(run, int(seq), json.loads(data)["outputs"]["version"]) for run, seq, data in rows]


def _run(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SAGACTL, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_build_submitted_during_another_waits_its_turn(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """v1 is held before its activation (a delay fault); a second build of the app waits
    for it, saying so, instead of racing it: v1 activates, then v2, which stays active.
    (An older build finishing last, the rule `records.activate` keeps, cannot happen
    between two builds any more: `test_records` holds the rule itself.)"""
    upload = tmp_path / "app.tar"
    upload.write_bytes(tar_of_dir(EXAMPLES / "static-site"))
    db = Path(cli_env["SAGACTL_DB"].removeprefix("sqlite://"))
    older = _run(["build", "site", str(upload), "--fault", "set_active_version:delay=15"], cli_env)
    try:
        _wait(lambda: _version_allocated(db, 1), "the first build's version")
        newer = subprocess.run(
            [SAGACTL, "build", "site", str(upload)],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        out, err = older.communicate(timeout=120)
    finally:
        if older.poll() is None:
            older.kill()
            older.communicate()
    assert older.returncode == 0, err
    assert out.startswith("site-v1 is active: ")
    assert newer.returncode == 0, newer.stderr
    assert "[queued] waits for its turn: 1 build of this app ahead" in newer.stderr
    assert newer.stdout.startswith("site-v2 is active: ")


def test_eight_concurrent_builds_end_with_the_last_submitted_active(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Eight builds of one app started at once take turns in the order their runs were
    submitted (their place on the key): each gets the next version and activates it in
    turn, and the last submitted is the one left active."""
    upload = tmp_path / "app.tar"
    upload.write_bytes(tar_of_dir(EXAMPLES / "static-site"))
    db = Path(cli_env["SAGACTL_DB"].removeprefix("sqlite://"))
    subprocess.run(  # the database exists before eight processes race to create it
        [SAGACTL, "db", "upgrade"], env=cli_env, check=True, capture_output=True, timeout=60
    )
    builds = [_run(["build", "site", str(upload), "--json"], cli_env) for _ in range(8)]
    try:
        results = [proc.communicate(timeout=600) for proc in builds]
    finally:
        for proc in builds:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert [proc.returncode for proc in builds] == [0] * 8, [err for _, err in results]
    placed = _keyed_runs(db)
    assert [seq for _, seq, _ in placed] == list(range(1, 9))
    assert [version for _, _, version in placed] == [f"site-v{n}" for n in range(1, 9)]
    shown = sorted((json.loads(out) for out, _ in results), key=lambda r: r["version"])
    assert all(r["activated"] and r["active_version"] == r["version"] for r in shown)
    app = json.loads(
        subprocess.run(
            [SAGACTL, "app", "show", "site", "--json"],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    assert app["active_version"] == "site-v8" == placed[-1][2]


def test_in_order_builds_activate_each(cli_env: dict[str, str], tmp_path: Path) -> None:
    """Builds one after the other each become active and say so."""
    upload = tmp_path / "app.tar"
    upload.write_bytes(tar_of_dir(EXAMPLES / "static-site"))
    for number in (1, 2):
        done = subprocess.run(
            [SAGACTL, "build", "site", str(upload)],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"site-v{number} is active: ")
