"""`sagactl build` and `sagactl app show|start` as real processes: output, exit codes, effects."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tars import M, make_tar, tar_of_dir

pytest.importorskip("sagactl.engine.api", reason="the engine runtime has not landed yet")

from sagactl.plugins.runtimes.local import process_start

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAGACTL = str(Path(sys.executable).with_name("sagactl"))


def _run(
    env: dict[str, str], *args: str, data: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SAGACTL, *args],
        input=data.decode("latin-1") if data is not None else None,
        env=env,
        capture_output=True,
        text=True,
        encoding="latin-1",
        timeout=120,
    )


def _get(url: str) -> bytes:
    if url.count("/") < 3:
        url += "/"
    with urllib.request.urlopen(url, timeout=5) as answer:
        body: bytes = answer.read()
        return body


class TestBuildCommand:
    def test_from_a_pipe_with_json(self, cli_env: dict[str, str]) -> None:
        """`tar c . | sagactl build APP - --json` prints the version as JSON on stdout only."""
        tar = subprocess.Popen(
            ["tar", "c", "-C", str(EXAMPLES / "static-site"), "."], stdout=subprocess.PIPE
        )
        result = subprocess.run(
            [SAGACTL, "build", "site", "-", "--json"],
            stdin=tar.stdout,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        tar.wait()
        assert tar.stdout is not None
        tar.stdout.close()
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        assert shown["version"] == "site-v1"
        assert shown["state"] == "succeeded"
        assert shown["digest"].startswith("sha256:")

    def test_from_a_file_with_live_progress(self, cli_env: dict[str, str], tmp_path: Path) -> None:
        """A tar file builds; stderr shows the upload and the builder's lines."""
        path = tmp_path / "app.tar.gz"
        path.write_bytes(tar_of_dir(EXAMPLES / "python-web", gz=True))
        result = _run(cli_env, "build", "web", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("web-v1 is active: oci:")
        assert "[receive_tar] upload staged and unpacked" in result.stderr
        assert "[build_image] oci: wrote" in result.stderr

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (make_tar([M("index.html"), M("../../etc/cron.d/x")]), "'../../etc/cron.d/x'"),
            (
                make_tar([M("index.html"), M("app.toml", data=b"name = 'Bad Name'\n")]),
                "app.toml:1:1",
            ),
            (b"", "the upload is empty"),
        ],
        ids=["traversal", "bad app.toml", "empty"],
    )
    def test_bad_input_exits_2_with_one_line(
        self, cli_env: dict[str, str], data: bytes, expected: str
    ) -> None:
        """Bad input: exit 2, the last stderr line names the member or place, no traceback."""
        result = _run(cli_env, "build", "bad", "-", "--quiet", data=data)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and expected in lines[-1]
        assert "Traceback" not in result.stderr
        shown = _run(cli_env, "app", "show", "bad", "--json")
        assert shown.returncode in (0, 2)  # 0 once a version number was allocated
        if shown.returncode == 0:
            assert json.loads(shown.stdout)["versions"] == []

    def test_missing_file(self, cli_env: dict[str, str]) -> None:
        """A TAR path that does not exist is bad input."""
        result = _run(cli_env, "build", "x", "/nonexistent.tar")
        assert result.returncode == 2
        assert result.stderr.strip() == "error: /nonexistent.tar: no such file"

    def test_failed_build_exits_1(self, cli_env: dict[str, str]) -> None:
        """A build that fails past bad input (an injected error) exits 1, compensated."""
        result = _run(
            cli_env,
            "build",
            "site",
            "-",
            "--quiet",
            "--fault",
            "build_image:error",
            data=tar_of_dir(EXAMPLES / "static-site"),
        )
        assert result.returncode == 1
        assert "compensated" in result.stderr.strip().splitlines()[-1]


class TestAppCommands:
    def test_build_serves_then_stop_start_logs_rebuild_rollback(
        self, cli_env: dict[str, str], tmp_path: Path
    ) -> None:
        """A build leaves its web service running on an allocated port (app.toml's port
        only, the command from the Procfile); app stop/start/logs act on it; a rebuild
        serves v2 and stops v1; app rollback serves v1 again and stops v2."""
        env = {**cli_env}
        source = tmp_path / "python-web"
        shutil.copytree(EXAMPLES / "python-web", source, symlinks=True)
        (source / "app.toml").write_text(
            '[env]\nGREETING = "hi"\n\n[services.web]\nport = 9999\nhealth = "/"\n'
        )
        data = tar_of_dir(source)
        assert _run(env, "build", "web", "-", "-q", data=data).returncode == 0
        shown = json.loads(_run(env, "app", "show", "web", "--json").stdout)
        assert (shown["name"], shown["active_version"]) == ("web", "web-v1")
        version = shown["versions"][0]
        assert {"version", "image", "digest", "created", "sandboxes"} <= set(version)
        (sandbox,) = version["sandboxes"]
        assert {"id", "version", "service", "runtime", "state", "url", "log"} <= set(sandbox)
        assert (sandbox["runtime"], sandbox["state"]) == ("local", "running")
        assert sandbox["url"] != "http://127.0.0.1:9999"
        assert _get(sandbox["url"]) == b"hi from web-v1\n"  # GREETING from app.toml
        logs = _run(env, "app", "logs", "web")
        assert logs.returncode == 0 and "GET / " in logs.stdout
        follow = subprocess.Popen(
            [SAGACTL, "app", "logs", "web", "-f"], env=env, stdout=subprocess.PIPE, text=True
        )
        assert follow.stdout is not None
        try:
            assert "GET / " in follow.stdout.readline()  # what was there already
            _get(sandbox["url"] + "/followed")
            deadline = time.monotonic() + 10
            line = ""
            while "/followed" not in line and time.monotonic() < deadline:
                line = follow.stdout.readline()  # new output, as it comes
            assert "GET /followed" in line
        finally:
            follow.send_signal(signal.SIGINT)
            follow.stdout.close()
        assert follow.wait(timeout=10) == 0

        stopped = _run(env, "app", "stop", "web")
        assert stopped.returncode == 0 and sandbox["id"] in stopped.stdout
        assert process_start(sandbox["pid"]) is None
        assert _run(env, "app", "start", "web", "web").returncode == 0
        shown = json.loads(_run(env, "app", "show", "web", "--json").stdout)
        restarted = shown["versions"][0]["sandboxes"][-1]
        assert restarted["state"] == "running" and restarted["id"] != sandbox["id"]
        assert _get(restarted["url"]) == b"hi from web-v1\n"

        assert _run(env, "build", "web", "-", "-q", data=data).returncode == 0
        shown = json.loads(_run(env, "app", "show", "web", "--json").stdout)
        assert shown["active_version"] == "web-v2"
        v2 = next(v for v in shown["versions"] if v["version"] == "web-v2")
        assert _get(v2["sandboxes"][0]["url"]) == b"hi from web-v2\n"
        old = next(v for v in shown["versions"] if v["version"] == "web-v1")
        assert {s["state"] for s in old["sandboxes"]} == {"stopped"}
        assert process_start(restarted["pid"]) is None

        rolled = _run(env, "app", "rollback", "web", "-q")
        assert (rolled.returncode, rolled.stdout) == (0, "web-v1 is active\n"), rolled.stderr
        shown = json.loads(_run(env, "app", "show", "web", "--json").stdout)
        assert shown["active_version"] == "web-v1"
        v1 = next(v for v in shown["versions"] if v["version"] == "web-v1")
        assert _get(v1["sandboxes"][-1]["url"]) == b"hi from web-v1\n"
        v2 = next(v for v in shown["versions"] if v["version"] == "web-v2")
        assert {s["state"] for s in v2["sandboxes"]} == {"stopped"}

    def test_rollback_errors_exit_2(self, cli_env: dict[str, str]) -> None:
        """Rollback of an unknown app, to a malformed or unknown version: one line, exit 2."""
        for args in (["ghost"], ["ghost", "v1"], ["ghost", "ghost-v3"]):
            result = _run(cli_env, "app", "rollback", *args)
            assert result.returncode == 2, (args, result.stderr)
            assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr

    def test_show_unknown_app_exits_2(self, cli_env: dict[str, str]) -> None:
        """app show of an app never built: exit 2, one line."""
        result = _run(cli_env, "app", "show", "ghost")
        assert (result.returncode, result.stderr.strip()) == (2, "error: no app named 'ghost'")

    def test_start_without_active_version(self, cli_env: dict[str, str]) -> None:
        """app start of an unknown app exits 2."""
        assert _run(cli_env, "app", "start", "ghost").returncode == 2


class TestOutputStyle:
    """Issue 10 item 17: stderr of `sagactl build` is for people, in one style."""

    def test_refused_upload_is_one_error_line(
        self, cli_env: dict[str, str], tmp_path: Path
    ) -> None:
        """A hostile tar: the live view's lines and one `error:` line, no JSON line."""
        path = tmp_path / "evil.tar"
        path.write_bytes(make_tar([M("../evil", data=b"x")]))
        done = _run(cli_env, "build", "evil", str(path))
        assert done.returncode == 2
        lines = done.stderr.splitlines()
        assert [line for line in lines if line.startswith("error:")] == [
            "error: member '../evil': '..' in path (escapes the archive)"
        ]
        assert not [line for line in lines if line.startswith("{")], lines
        quiet = _run(cli_env, "build", "evil", str(path), "-q")
        assert quiet.stderr.splitlines() == lines[-1:]

    def test_cluster_fallback_warning_is_worded_for_people(
        self, cli_env: dict[str, str], tmp_path: Path
    ) -> None:
        """A cluster host that does not resolve: one `warning:` line amid the live view."""
        path = tmp_path / "site.tar"
        path.write_bytes(tar_of_dir(EXAMPLES / "static-site"))
        env = {**cli_env, "SAGACTL_CLUSTER_HOST": "cluster.invalid"}
        done = _run(env, "build", "site", str(path))
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        [warning] = [line for line in lines if line.startswith("warning:")]
        assert warning.startswith(
            "warning: [resolve_cluster_ip] cluster host does not resolve: single-machine mode"
        )
        assert "fallback: 127.0.0.1" in warning
        assert not [line for line in lines if line.startswith("{")], lines
