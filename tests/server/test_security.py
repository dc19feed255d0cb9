"""Who may change things: loopback by default, the bearer token, cross-site requests,
body caps."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import httpx
import pytest
from cliruns import plugin_env, stuck_run
from servetools import SAGACTL, Server

pytestmark = pytest.mark.slow
START = {"saga": "build-from-tar", "inputs": {"app": "x", "stream_id": "nobody-here-1"}}


def test_binding_beyond_loopback_needs_a_token(server_env: dict[str, str]) -> None:
    done = subprocess.run(
        [SAGACTL, "serve", "--host", "0.0.0.0", "--port", "1"],
        env=server_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: binding 0.0.0.0 (beyond this machine) needs a token: --token or $SAGACTL_TOKEN"
    )


@pytest.mark.parametrize("how", ["option", "env"])
def test_with_a_token_every_mutating_request_needs_it(
    make_server: Callable[..., Server], how: str
) -> None:
    token = "s3cret-token-of-the-test"
    if how == "option":
        server = make_server("--host", "0.0.0.0", "--token", token).start()
    else:
        server = make_server("--host", "0.0.0.0", SAGACTL_TOKEN=token).start()
    with server.client() as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            for path in (
                "/api/runs",
                "/api/apps/x/builds",
                "/api/runs/r/cancel",
                "/api/runs/r/retry",
            ):
                answer = client.post(path, json=START, headers=headers)
                assert answer.status_code == 401, (path, headers)
                assert "Bearer" in answer.json()["error"]
        assert client.get("/api/runs").status_code == 200  # reading needs no token
        ok = client.post("/api/runs", json=START, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 202, ok.text


def test_retrying_a_stuck_run_needs_the_token_and_this_origin(
    make_server: Callable[..., Server],
) -> None:
    token = "s3cret-token-of-the-test"
    server = make_server("--host", "0.0.0.0", "--token", token, **plugin_env())
    run_id = stuck_run(server, "stuck-1")
    server.start()
    bearer = {"Authorization": f"Bearer {token}"}
    with server.client() as client:
        refused = client.post(f"/api/runs/{run_id}/retry")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        cross = client.post(
            f"/api/runs/{run_id}/retry", headers={**bearer, "Origin": "http://evil.example"}
        )
        assert cross.status_code == 403
        assert client.get(f"/api/runs/{run_id}").json()["state"] == "stuck"
        ok = client.post(f"/api/runs/{run_id}/retry", headers=bearer)
        assert ok.status_code == 202, ok.text
    assert server.wait_run(run_id)["state"] == "succeeded"


def test_cross_site_posts_are_refused(server: Server) -> None:
    with server.client() as client:
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Origin": f"http://127.0.0.1:{server.port + 1}"},
            {"Sec-Fetch-Site": "cross-site"},
        ):
            answer = client.post("/api/runs", json=START, headers=headers)
            assert answer.status_code == 403, headers
            assert "cross-site" in answer.json()["error"]
        same = client.post("/api/runs", json=START, headers={"Origin": server.url})
        assert same.status_code == 202, same.text


def test_bodies_other_than_uploads_are_capped(server: Server) -> None:
    big = b'{"saga": "' + b"x" * (2 << 20) + b'"}'
    with server.client() as client:
        assert client.post("/api/runs", content=big).status_code == 413
        chunks = iter([big[i : i + 65536] for i in range(0, len(big), 65536)])
        answer = client.post("/api/runs", content=chunks)
        assert answer.status_code == 413
        assert "limit" in answer.json()["error"]


def test_responses_carry_safe_headers(server: Server) -> None:
    answer = httpx.get(f"{server.url}/api/runs")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in answer.headers["content-security-policy"]


def test_attacker_text_comes_back_escaped(server: Server) -> None:
    """An action error and an app name holding `<script>` are shown as text, never markup."""
    from tars import M, make_tar

    hostile = make_tar([M("<script>alert(1)</script>/../x", data=b"x")])
    with server.client() as client:
        answer = client.post("/api/apps/evil/builds", content=hostile)
        assert answer.status_code == 400
        assert "<script>alert(1)</script>" in answer.json()["error"]  # JSON: text as is
        run_page = client.get(f"/runs/{answer.json()['run_id']}").text
        app_page = client.get("/apps/%3Cscript%3Ealert(2)")
        runs_page = client.get("/", params={"q": "<script>alert(3)</script>"}).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in run_page
    assert app_page.status_code == 404
    assert "&lt;script&gt;alert(2)" in app_page.text
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in runs_page
    for page in (run_page, app_page.text, runs_page):
        assert "<script>alert" not in page
        assert page.count("<script") == page.count('<script src="/static/console.js"') + page.count(
            '<script type="application/json"'
        )
