"""Issue 10 item 8: builds of one app finishing out of order, as real concurrent processes.

The rule: the active version is the highest number, that is the last build submitted
(numbers are allocated at submission by get_next_version). An older build that finishes
later does not take activation over: it succeeds (its version is built and recorded),
reports that it is not active and which version is, and `app show` agrees.
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


def test_older_build_finishing_last_does_not_take_over(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """v1 is held before its activation (a delay fault) while v2 builds and activates;
    v1 then finishes: it exits 0 saying it is built but not active, v2 stays active."""
    upload = tmp_path / "app.tar"
    upload.write_bytes(tar_of_dir(EXAMPLES / "static-site"))
    db = Path(cli_env["SAGACTL_DB"].removeprefix("sqlite://"))
    older = subprocess.Popen(
        [SAGACTL, "build", "site", str(upload), "--fault", "set_active_version:delay=6"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait(lambda: _version_allocated(db, 1), "the first build's version")
        newer = subprocess.run(
            [SAGACTL, "build", "site", str(upload), "--json"],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert older.poll() is None, "the first build was meant to still be running"
        out, err = older.communicate(timeout=120)
    finally:
        if older.poll() is None:
            older.kill()
            older.communicate()
    assert newer.returncode == 0, newer.stderr
    shown = json.loads(newer.stdout)
    assert (shown["version"], shown["active_version"], shown["activated"]) == (
        "site-v2",
        "site-v2",
        True,
    )
    assert older.returncode == 0, err
    assert out.startswith("site-v1 is built but not active: site-v2, a newer build, stays active")
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
    assert app["active_version"] == "site-v2"
    assert sorted(v["version"] for v in app["versions"]) == ["site-v1", "site-v2"]


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
