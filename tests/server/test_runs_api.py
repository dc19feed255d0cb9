"""/api/runs, SSE, operator requests, sagas, metrics and OpenAPI against a real server."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from cliruns import plugin_env, stuck_run
from servetools import EXAMPLES, Server
from sse import read_stream
from tars import tar_of_dir

pytestmark = pytest.mark.slow
SITE = tar_of_dir(EXAMPLES / "static-site")


def build(server: Server, app: str = "site", *, wait: bool = False) -> str:
    with server.client() as client:
        answer = client.post(f"/api/apps/{app}/builds", params={"wait": int(wait)}, content=SITE)
    assert answer.status_code in (200, 202), answer.text
    return str(answer.json()["run_id"])


class TestStream:
    def test_every_event_once_in_order_while_the_run_goes_on(
        self, make_server: Callable[..., Server]
    ) -> None:
        """Followed live from 0 (the build is slowed down), then compared with the log."""
        server = make_server().start(SAGACTL_FAULTS="build_image:delay=1.5")
        run_id = build(server)
        with server.client() as client:
            frames, ended = read_stream(client, run_id, last=0)
            logged = client.get(f"/api/runs/{run_id}/events").json()["events"]
        assert ended
        assert [f["id"] for f in frames] == [e["seq"] for e in logged]
        assert [f["id"] for f in frames] == list(range(1, len(logged) + 1))
        assert [f["data"] for f in frames] == logged
        assert frames[-1]["event"] == "run_finished"

    def test_reconnect_with_last_event_id_continues_exactly(
        self, make_server: Callable[..., Server]
    ) -> None:
        server = make_server().start(SAGACTL_FAULTS="build_image:delay=1.5")
        run_id = build(server)
        with server.client() as client:
            first, ended = read_stream(client, run_id, last=0, stop_after=4)
            assert not ended and [f["id"] for f in first] == [1, 2, 3, 4]
            rest, ended = read_stream(client, run_id, last=first[-1]["id"])
            logged = client.get(f"/api/runs/{run_id}/events").json()["events"]
        assert ended
        assert [f["id"] for f in first + rest] == [e["seq"] for e in logged]

    def test_many_clients_each_get_the_whole_log(self, make_server: Callable[..., Server]) -> None:
        server = make_server().start(SAGACTL_FAULTS="build_image:delay=1")
        run_id = build(server)
        got: list[list[int]] = []

        def follow() -> None:
            with server.client() as client:
                frames, ended = read_stream(client, run_id, last=0)
            got.append([f["id"] for f in frames] if ended else [])

        threads = [threading.Thread(target=follow) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        with server.client() as client:
            count = len(client.get(f"/api/runs/{run_id}/events").json()["events"])
        assert got == [list(range(1, count + 1))] * 20

    def test_bad_last_event_id_and_unknown_run(self, server: Server) -> None:
        run_id = build(server, wait=True)
        with server.client() as client:
            bad = client.get(f"/api/runs/{run_id}/stream", headers={"Last-Event-ID": "x"})
            assert bad.status_code == 400
            assert client.get("/api/runs/nope/stream").status_code == 404
            frames, ended = read_stream(client, run_id, last=10_000)
        assert (frames, ended) == ([], True)


class TestRuns:
    def test_list_is_newest_first_paginated_and_filtered(self, server: Server) -> None:
        ids = [build(server, app, wait=True) for app in ("one", "two", "three")]
        with server.client() as client:
            page = client.get("/api/runs", params={"limit": 2}).json()
            assert [r["run_id"] for r in page["runs"]] == ids[::-1][:2]
            assert set(page["runs"][0]) == {
                "run_id",
                "saga",
                "state",
                "started",
                "finished",
                "owner",
                "lease_expires",
                "node",
            }
            rest = client.get("/api/runs", params={"limit": 2, "before": page["next"]}).json()
            assert [r["run_id"] for r in rest["runs"]] == [ids[0]]
            assert rest["next"] is None
            assert [r["run_id"] for r in client.get("/api/runs?q=two").json()["runs"]] == [ids[1]]
            assert client.get("/api/runs?state=running").json()["runs"] == []
            # Builds start no child sagas: filtered by parent, none is left.
            assert client.get(f"/api/runs?parent={ids[0]}").json()["runs"] == []
            assert (
                len(client.get("/api/runs?state=succeeded&saga=build-from-tar").json()["runs"]) == 3
            )
            for query in ("state=nope", "limit=0", "limit=x", "before=garbage"):
                answer = client.get(f"/api/runs?{query}")
                assert answer.status_code == 400, query
                assert answer.json()["error"]

    def test_one_run_is_the_status_json_shape(self, server: Server) -> None:
        run_id = build(server, wait=True)
        with server.client() as client:
            run = client.get(f"/api/runs/{run_id}").json()
            assert client.get("/api/runs/nope").status_code == 404
        assert run["state"] == "succeeded"
        assert set(run["actions"]["receive_tar"]) == {"state", "attempts", "error", "outputs"}
        assert len(run["actions"]) == 12  # the seed's eleven and start_sandboxes

    def test_start_a_saga_by_name(self, server: Server) -> None:
        """POST /api/runs starts it (a stream nobody uploaded: the run compensates)."""
        with server.client() as client:
            answer = client.post(
                "/api/runs",
                json={
                    "saga": "build-from-tar",
                    "inputs": {"app": "x", "stream_id": "nobody-here-1"},
                },
            )
            assert answer.status_code == 202, answer.text
            run = server.wait_run(answer.json()["run_id"])
            assert run["state"] == "compensated"
            assert "gone" in run["actions"]["receive_tar"]["error"]
            for body, status in (
                ({"saga": "nope"}, 404),
                ({"saga": "build-from-tar", "inputs": {"app": "x"}}, 422),
                (
                    {"saga": "build-from-tar", "inputs": {"app": "UPPER", "stream_id": "abcdefgh"}},
                    422,
                ),
                ({"inputs": {}}, 400),
                ([1, 2], 400),
            ):
                answer = client.post("/api/runs", json=body)
                assert answer.status_code == status, (body, answer.text)
            assert client.post("/api/runs", content=b"{not json").status_code == 400

    def test_cancel_a_running_build(self, make_server: Callable[..., Server]) -> None:
        server = make_server().start(SAGACTL_FAULTS="build_image:delay=30")
        run_id = build(server, "cancelled")
        server.wait_run(run_id, until=lambda r: r["actions"]["build_image"]["state"] == "running")
        with server.client() as client:
            answer = client.post(f"/api/runs/{run_id}/cancel")
            assert answer.status_code == 202, answer.text
            run = server.wait_run(run_id)
            assert run["state"] in ("cancelled", "compensated"), run
            again = client.post(f"/api/runs/{run_id}/cancel")
            assert again.status_code == 409
            assert client.post(f"/api/runs/{run_id}/abandon").status_code == 400
        assert server.staged_files() == []  # the upload and its sources compensated

    def test_abandon_and_resume_of_unknown_runs(self, server: Server) -> None:
        with server.client() as client:
            for verb in ("cancel", "resume", "abandon"):
                assert client.post(f"/api/runs/nope/{verb}").status_code == 404


class TestRetry:
    def test_a_stuck_run_is_retried_and_succeeds(self, make_server: Callable[..., Server]) -> None:
        """Stuck at c after the pivot (a fault the CLI had); the server has no fault."""
        server = make_server(**plugin_env())
        run_id = stuck_run(server, "stuck-1")
        server.start()
        with server.client() as client:
            assert client.get(f"/api/runs/{run_id}").json()["state"] == "stuck"
            answer = client.post(f"/api/runs/{run_id}/retry", headers={"Origin": server.url})
            assert answer.status_code == 202, answer.text
            assert answer.json()["run_id"] == run_id
            run = server.wait_run(run_id)
            assert run["state"] == "succeeded", run
            assert run["actions"]["c"]["attempts"] == 2
            log = client.get(f"/api/runs/{run_id}/events").json()["events"]
            (retried,) = [e for e in log if e["data"].get("operation") == "retry"]
            assert retried["kind"] == "run_resumed" and retried["data"]["from_state"] == "stuck"
            again = client.post(f"/api/runs/{run_id}/retry")
            assert again.status_code == 409
            assert again.json()["error"] == (
                f"run {run_id} is succeeded, not stuck: only a stuck run is retried"
            )

    def test_retry_of_unknown_and_unfinished_runs_is_refused(
        self, make_server: Callable[..., Server]
    ) -> None:
        server = make_server().start(SAGACTL_FAULTS="build_image:delay=30")
        run_id = build(server, "running")
        with server.client() as client:
            assert client.post("/api/runs/nope/retry").status_code == 404
            refused = client.post(f"/api/runs/{run_id}/retry")
            assert refused.status_code == 409, refused.text
            assert "not stuck" in refused.json()["error"]
            assert client.get(f"/api/runs/{run_id}").json()["state"] == "running"
            assert client.post(f"/api/runs/{run_id}/cancel").status_code == 202


class TestCatalog:
    def test_sagas_and_graphs(self, server: Server) -> None:
        with server.client() as client:
            sagas = client.get("/api/sagas").json()["sagas"]
            assert [s["name"] for s in sagas] == ["build-from-tar", "rollback"]
            svg = client.get("/api/sagas/build-from-tar/graph?format=svg")
            assert svg.headers["content-type"].startswith("image/svg+xml")
            assert "<svg" in svg.text and "receive_tar" in svg.text
            graph = client.get("/api/sagas/build-from-tar/graph?format=json").json()
            assert len(graph["nodes"]) == 12
            assert client.get("/api/sagas/nope/graph").status_code == 404
            assert client.get("/api/sagas/build-from-tar/graph?format=png").status_code == 400

    def test_openapi_names_every_route(self, server: Server) -> None:
        with server.client() as client:
            document = client.get("/api/openapi.json").json()
        assert document["openapi"].startswith("3.")
        for path in (
            "/api/apps/{app}/builds",
            "/api/runs",
            "/api/runs/{run_id}",
            "/api/runs/{run_id}/events",
            "/api/runs/{run_id}/stream",
            "/api/runs/{run_id}/cancel",
            "/api/runs/{run_id}/resume",
            "/api/runs/{run_id}/abandon",
            "/api/runs/{run_id}/retry",
            "/api/sagas",
            "/api/sagas/{name}/graph",
            "/api/apps",
            "/api/apps/{app}",
            "/healthz",
            "/metrics",
        ):
            assert path in document["paths"], path

    def test_metrics(self, server: Server) -> None:
        build(server, wait=True)
        with server.client() as client:
            text = client.get("/metrics").text
        assert 'sagactl_runs{saga="build-from-tar",state="succeeded"} 1.0' in text
        assert (
            "sagactl_action_duration_seconds_count"
            '{action="receive_tar",outcome="succeeded",saga="build-from-tar"} 1.0' in text
        )
        assert "sagactl_oldest_unfinished_run_age_seconds{" not in text  # none unfinished
