"""`sagactl build --server URL APP SRC`: upload to a real server, follow its run live."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from servetools import EXAMPLES, SAGACTL, Server
from tars import tar_of_dir

pytestmark = pytest.mark.slow


def build(
    server: Server, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SAGACTL, "build", "--server", server.url, *args],
        env=env or server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_builds_on_the_server_with_the_live_view(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "site.tar.gz"
    source.write_bytes(tar_of_dir(EXAMPLES / "static-site", gz=True))
    done = build(server, "remote", str(source))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("remote-v1 is active: oci:")
    assert "[receive_tar] done" in done.stderr
    assert "[set_active_version] done" in done.stderr
    with server.client() as client:
        assert client.get("/api/apps/remote").json()["active_version"] == "remote-v1"


def test_a_bad_upload_exits_2_with_the_servers_line(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "junk.tar"
    source.write_bytes(b"junk" * 1000)
    done = build(server, "remote", str(source))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: not a tar archive")


def test_the_token_is_sent(make_server: Callable[..., Server], tmp_path: Path) -> None:
    server = make_server("--token", "tok-123").start()
    source = tmp_path / "site.tar"
    source.write_bytes(tar_of_dir(EXAMPLES / "static-site"))
    refused = build(server, "guarded", str(source))
    assert refused.returncode == 2
    assert "the server refused" in refused.stderr
    done = build(server, "guarded", str(source), env={**server.env, "SAGACTL_TOKEN": "tok-123"})
    assert done.returncode == 0, done.stderr
