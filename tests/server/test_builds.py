"""POST /api/apps/{app}/builds against a real `sagactl serve`: streamed uploads, hostile
uploads, a client that goes away, a server killed after staging."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from servetools import EXAMPLES, Server
from tars import M, make_tar, tar_of_dir

pytestmark = pytest.mark.slow


def tar_process_chunks() -> Iterator[bytes]:
    """`tar c -C examples/static-site .` as it comes out of the pipe: a real stream."""
    with subprocess.Popen(
        ["tar", "c", "-C", str(EXAMPLES / "static-site"), "."], stdout=subprocess.PIPE
    ) as tar:
        assert tar.stdout is not None
        while chunk := tar.stdout.read(16 << 10):
            yield chunk
    assert tar.returncode == 0


def versions_of(client: httpx.Client, app: str) -> list[object]:
    """The app's versions (none when the app is unknown: get_next_version, which runs
    beside the upload, may have recorded the app itself before a refusal)."""
    answer = client.get(f"/api/apps/{app}")
    if answer.status_code == 404:
        return []
    assert answer.status_code == 200, answer.text
    return list(answer.json()["versions"])


class TestUploads:
    def test_a_streamed_tar_builds(self, server: Server) -> None:
        """A chunked upload from tar's pipe: 202 with the run id, and the run succeeds."""
        with server.client() as client:
            answer = client.post("/api/apps/site/builds", content=tar_process_chunks())
            assert answer.status_code == 202, answer.text
            run_id = answer.json()["run_id"]
            run = server.wait_run(run_id)
            assert run["state"] == "succeeded", run
            assert run["actions"]["create_version"]["outputs"]["version_id"] == "site-v1"
            app = client.get("/api/apps/site").json()
            assert app["active_version"] == "site-v1"
            assert client.get("/api/apps").json()["apps"] == [
                {"name": "site", "active_version": "site-v1", "versions": 1}
            ]
        assert not (server.build_dir / "staging").exists() or not list(
            (server.build_dir / "staging").iterdir()
        )

    def test_wait_answers_with_the_result(self, server: Server) -> None:
        """?wait=1 answers when the run ends, with the build's result; a gzip tar works."""
        body = tar_of_dir(EXAMPLES / "python-web", gz=True)
        with server.client() as client:
            answer = client.post("/api/apps/web/builds?wait=1", content=body)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert (result["state"], result["version"]) == ("succeeded", "web-v1")
        assert result["digest"].startswith("sha256:")

    def test_answered_once_staged_and_checked_before_unpacking(
        self, make_server: Callable[..., Server]
    ) -> None:
        """receive_tar is held after its work (a delay fault): a sound upload is answered
        while it still runs, the config actions not yet started. One whose Procfile is a
        symlink cannot be judged from the stream: it is answered once they passed."""
        server = make_server().start(SAGACTL_FAULTS="receive_tar:delay=3@after")
        site = tar_of_dir(EXAMPLES / "static-site")
        linked = make_tar(
            [
                M("index.html", data=b"hi"),
                M("procs", data=b"web: ./x\n"),
                M("Procfile", "l", link="procs"),
            ]
        )
        with server.client() as client:
            early = client.post("/api/apps/early/builds", content=site)
            assert early.status_code == 202, early.text
            run = client.get(f"/api/runs/{early.json()['run_id']}").json()
            assert run["actions"]["receive_tar"]["state"] == "running"
            assert run["actions"]["load_config"]["state"] == "pending"
            late = client.post("/api/apps/late/builds", content=linked)
            assert late.status_code == 202, late.text
            run = client.get(f"/api/runs/{late.json()['run_id']}").json()
            assert run["actions"]["parse_services"]["state"] == "succeeded"
        assert server.wait_run(early.json()["run_id"])["state"] == "succeeded"


HOSTILE: list[tuple[str, bytes, int, str]] = [
    ("dotdot", make_tar([M("../evil", data=b"x")]), 400, "'..' in path"),
    ("absolute", make_tar([M("/etc/passwd", data=b"x")]), 400, "absolute path"),
    ("symlink-out", make_tar([M("up", "l", link="../../etc")]), 400, "up"),
    ("device", make_tar([M("dev", "c")]), 400, "dev"),
    ("zip", b"PK\x03\x04" + b"\0" * 2000, 400, "zip"),
    ("not-tar", b"hello " * 400, 400, "not a tar"),
    ("bad-gzip", b"\x1f\x8b\x08\x00" + b"\xff" * 600, 400, "gzip"),
    ("empty", b"", 400, "empty"),
    (
        "bad-toml",
        make_tar([M("index.html", data=b"hi"), M("app.toml", data=b"[[[ not toml")]),
        422,
        "app.toml",
    ),
    (
        "bad-procfile",
        make_tar([M("index.html", data=b"hi"), M("Procfile", data=b"no colon here\n")]),
        422,
        "Procfile",
    ),
]


class TestHostileUploads:
    @pytest.mark.parametrize(
        ("name", "body", "status", "says"), HOSTILE, ids=[h[0] for h in HOSTILE]
    )
    def test_refused_with_nothing_staged(
        self, server: Server, name: str, body: bytes, status: int, says: str
    ) -> None:
        """Each gets its status and the CLI's one line; no staged file, no version."""
        with server.client() as client:
            answer = client.post("/api/apps/hostile/builds", content=body)
            assert answer.status_code == status, answer.text
            error = answer.json()["error"]
            assert says in error and "\n" not in error
            assert versions_of(client, "hostile") == []
            if "run_id" in answer.json():
                run = client.get(f"/api/runs/{answer.json()['run_id']}").json()
                assert run["state"] == "compensated"
        assert server.staged_files() == []

    def test_bad_app_name(self, server: Server) -> None:
        with server.client() as client:
            answer = client.post("/api/apps/Bad_Name/builds", content=b"x")
        assert answer.status_code == 400
        assert "bad app name" in answer.json()["error"]

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    def test_over_the_cap_is_413(self, make_server: Callable[..., Server], chunked: bool) -> None:
        """Past SAGACTL_MAX_UPLOAD_BYTES: 413, whether announced up front or found mid-stream."""
        server = make_server(SAGACTL_MAX_UPLOAD_BYTES="65536").start()
        body = make_tar([M("big.bin", data=b"\0" * (256 << 10))])
        content: bytes | Iterator[bytes] = (
            iter([body[i : i + 8192] for i in range(0, len(body), 8192)]) if chunked else body
        )
        with server.client() as client:
            answer = client.post("/api/apps/big/builds", content=content)
            assert answer.status_code == 413, answer.text
            assert "limit of 65536" in answer.json()["error"]
            assert versions_of(client, "big") == []
        assert server.staged_files() == []


class TestCrashes:
    def test_a_client_gone_mid_upload_leaves_a_compensated_run(self, server: Server) -> None:
        """Half a tar, then the connection closes: the run compensates, nothing stays."""
        body = tar_of_dir(EXAMPLES / "python-web")
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(
                b"POST /api/apps/gone/builds HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Content-Length: {len(body) * 10}\r\n\r\n".encode()
                + body[: len(body) // 2]
            )
            deadline = time.monotonic() + 20
            run_id = None
            with server.client() as client:
                while run_id is None and time.monotonic() < deadline:
                    runs = client.get("/api/runs", params={"q": "gone"}).json()["runs"]
                    run_id = runs[0]["run_id"] if runs else None
                    time.sleep(0.05)
        assert run_id is not None
        run = server.wait_run(run_id)
        assert run["state"] == "compensated", run
        assert "disconnected" in run["actions"]["receive_tar"]["error"]
        assert server.staged_files() == []
        with server.client() as client:
            assert versions_of(client, "gone") == []

    def test_killed_after_staging_finishes_on_restart(
        self, make_server: Callable[..., Server]
    ) -> None:
        """SIGKILL once the upload is staged; a new `serve` resumes the run to success."""
        server = make_server()
        server.start(SAGACTL_FAULTS="build_image:delay=60")
        with server.client() as client:
            answer = client.post("/api/apps/phoenix/builds", content=tar_process_chunks())
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]
        server.wait_run(run_id, until=lambda r: r["actions"]["build_image"]["state"] == "running")
        server.kill()
        server.start()
        run = server.wait_run(run_id)
        assert run["state"] == "succeeded", run
        assert run["actions"]["receive_tar"]["attempts"] == 1  # recovered, not re-received
        with server.client() as client:
            assert client.get("/api/apps/phoenix").json()["active_version"] == "phoenix-v1"
        assert list((server.build_dir / "staging").iterdir()) == []

    def test_answered_before_unpacking_then_killed_recovers_from_the_staged_file(
        self, make_server: Callable[..., Server]
    ) -> None:
        """The 202 comes once the upload is staged and checked, before receive_tar unpacks
        it; the server then dies before receive_tar's completion is logged (a crash fault).
        A new `serve` unpacks the staged file again and finishes the build."""
        server = make_server()
        server.start(SAGACTL_FAULTS="receive_tar:crash@after")
        with server.client() as client:
            answer = client.post("/api/apps/phoenix/builds", content=tar_process_chunks())
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]
        assert server.proc is not None
        assert server.proc.wait(30) != 0  # the fault's crash, not a clean exit
        staged = list((server.build_dir / "staging").glob("*.tar"))
        assert len(staged) == 1  # what the restarted server recovers from
        server.start()
        run = server.wait_run(run_id)
        assert run["state"] == "succeeded", run
        assert run["actions"]["receive_tar"]["attempts"] == 2
        with server.client() as client:
            assert client.get("/api/apps/phoenix").json()["active_version"] == "phoenix-v1"
        assert list((server.build_dir / "staging").iterdir()) == []
