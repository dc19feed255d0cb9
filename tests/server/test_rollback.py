"""POST /api/apps/{app}/rollback against a real `sagactl serve`: an earlier version
starts beside the serving one, becomes active and serves; bad asks are refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from servetools import Server
from tars import M, make_tar

pytestmark = pytest.mark.slow


def site(text: str) -> bytes:
    return make_tar([M("index.html", data=f"<h1>{text}</h1>".encode())])


def serving(client: httpx.Client, app: str) -> tuple[str, str]:
    """The active version and what its running sandbox answers at its URL."""
    shown: dict[str, Any] = client.get(f"/api/apps/{app}").json()
    active = shown["active_version"]
    (version,) = [v for v in shown["versions"] if v["version"] == active]
    urls = [s["url"] for s in version["sandboxes"] if s["state"] == "running" and s.get("url")]
    assert urls, version
    return active, httpx.get(urls[0], timeout=10).text


def build(client: httpx.Client, app: str, text: str) -> None:
    answer = client.post(f"/api/apps/{app}/builds?wait=1", content=site(text))
    assert answer.status_code == 200 and answer.json()["state"] == "succeeded", answer.text


class TestRollback:
    def test_rollback_to_v1_while_v2_serves(self, server: Server) -> None:
        """v2 serves; rollback to version 1 starts v1, activates it, stops v2; then a
        rollback without a body goes back to the version before the active one."""
        with server.client() as client:
            build(client, "roll", "one")
            build(client, "roll", "two")
            assert serving(client, "roll")[0] == "roll-v2"
            assert "two" in serving(client, "roll")[1]

            answer = client.post("/api/apps/roll/rollback", json={"version": 1})
            assert answer.status_code == 200, answer.text
            assert answer.json()["active_version"] == "roll-v1"
            run = client.get(f"/api/runs/{answer.json()['run_id']}").json()
            assert (run["saga"], run["state"]) == ("rollback", "succeeded")
            active, page = serving(client, "roll")
            assert active == "roll-v1" and "one" in page
            shown = client.get("/api/apps/roll").json()
            (v2,) = [v for v in shown["versions"] if v["version"] == "roll-v2"]
            assert all(s["state"] != "running" for s in v2["sandboxes"]), v2

            # Without a body: the version before the active one; v1 has none.
            answer = client.post("/api/apps/roll/rollback")
            assert answer.status_code == 409, answer.text
            assert "no version older than roll-v1" in answer.json()["error"]

    def test_bad_asks_are_refused_and_change_nothing(self, server: Server) -> None:
        with server.client() as client:
            build(client, "kept", "one")
            cases: list[tuple[str, Any, int, str]] = [
                ("kept", {"version": 9}, 404, "has no version 'kept-v9'"),
                ("nobody", {"version": 1}, 404, "no app named 'nobody'"),
                ("kept", {"version": 0}, 422, "version must be a version number"),
                ("kept", {"version": "1"}, 422, "version must be a version number"),
                ("kept", {"version": True}, 422, "version must be a version number"),
                ("kept", {"number": 1}, 422, "the body must be"),
                ("kept", [1], 422, "the body must be"),
                ("Bad_Name", {}, 400, "bad app name"),
            ]
            for app, body, status, says in cases:
                answer = client.post(f"/api/apps/{app}/rollback", json=body)
                assert answer.status_code == status, (app, body, answer.text)
                assert says in answer.json()["error"], answer.text
            not_json = client.post("/api/apps/kept/rollback", content=b"{nope")
            assert not_json.status_code == 400
            assert client.get("/api/apps/kept").json()["active_version"] == "kept-v1"
            assert client.get("/api/runs", params={"saga": "rollback"}).json()["runs"] == []


def test_rollback_needs_the_token_beyond_loopback(make_server: Callable[..., Server]) -> None:
    token = "rollback-token-of-the-test"
    server = make_server("--host", "0.0.0.0", "--token", token).start()
    with server.client() as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            answer = client.post("/api/apps/x/rollback", json={"version": 1}, headers=headers)
            assert answer.status_code == 401, answer.text
        answer = client.post(
            "/api/apps/x/rollback",
            json={"version": 1},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 404, answer.text  # let through: there is no app x


def test_cross_site_rollback_is_refused(server: Server) -> None:
    with server.client() as client:
        answer = client.post(
            "/api/apps/x/rollback", json={}, headers={"Origin": "http://evil.example"}
        )
        assert answer.status_code == 403
        same = client.post("/api/apps/x/rollback", json={}, headers={"Origin": server.url})
        assert same.status_code == 404, same.text
