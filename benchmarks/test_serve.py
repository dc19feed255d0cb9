"""Issue 11: `sagactl serve` — a 1 GiB upload over HTTP against curl to a plain file sink,
GET /api/runs at 100,000 runs, and the latency from commit to SSE client."""

from __future__ import annotations

import io
import json
import statistics
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sagactl.engine.store import open_store

from .pairing import paired
from .serving import (
    bulk_load_runs,
    curl_upload,
    environment,
    file_sink,
    peak_rss_mb,
    serve,
)
from .staging import SIZE_ENV, make_tar, tar_size

pytestmark = pytest.mark.timeout(3600)  # a GiB three times over, twice
RUNS = 100_000
REQUESTS = 300
BUILDS = 10


@pytest.fixture(scope="module")
def big_tar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("upload") / "app.tar"
    make_tar(path, tar_size())
    with tarfile.open(path, "a") as tar:  # a static site, so its stack is known
        page = b"<h1>big</h1>"
        info = tarfile.TarInfo("index.html")
        info.size = len(page)
        tar.addfile(info, io.BytesIO(page))
    yield path
    path.unlink()


def _sink_round(sink: str, tar: Path) -> None:
    assert curl_upload(sink, tar)["code"] == 200


def wait_ended(client: httpx.Client, run_id: str) -> float:
    """Polls the run until it ended (its build stopped by the fault and compensated)."""
    while True:
        run = client.get(f"/api/runs/{run_id}").json()
        if run["finished"] is not None:
            return float(run["finished"])
        time.sleep(0.2)


def _quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


class TestServe:
    def test_upload_over_http(self, benchmark: Any, big_tar: Path, tmp_path: Path) -> None:
        """curl -T the tar to /api/apps/A/builds (answered once staged, checked and its
        config known to pass; unpacking follows), each round preceded by curl to the plain
        file sink. The build is stopped at build_image by a fault, so rounds do not pile up
        image work; before each baseline the previous build is waited out (untimed), so
        its unpacking and compensation do not land in the next round."""
        env = {**environment(tmp_path), "SAGACTL_FAULTS": "build_image:error"}
        size = big_tar.stat().st_size
        with (
            serve(tmp_path, env) as (url, pid),
            file_sink(tmp_path / "sink.tar") as sink,
            httpx.Client(base_url=url, timeout=600) as client,
        ):
            answers: list[dict[str, Any]] = []
            runs_ended: list[float] = []

            def settle() -> None:
                for answer in answers[len(runs_ended) :]:
                    runs_ended.append(wait_ended(client, str(answer["run_id"])))

            def upload() -> None:
                answers.append(curl_upload(f"{url}/api/apps/big/builds", big_tar, body=True))

            paired(
                benchmark,
                upload,
                lambda: _sink_round(sink, big_tar),
                key="serve_upload",
                units=size,
                baseline_key="sink_upload",
                baseline_units=size,
                rounds=3,
                settle=settle,
            )
            settle()
            assert all(a["code"] == 202 for a in answers), answers
            benchmark.extra_info.update(peak_rss_mb=round(peak_rss_mb(pid), 1), size_env=SIZE_ENV)

    def test_runs_page_at_100k_runs(self, benchmark: Any, tmp_path: Path) -> None:
        """GET /api/runs (first page, a state filter, a page deep in the list, a search)
        with 100,000 runs in SQLite; GET /healthz timed alongside as the HTTP floor."""
        env = environment(tmp_path)

        async def schema() -> None:
            async with open_store(env["SAGACTL_DB"]):
                pass

        anyio.run(schema)
        bulk_load_runs(tmp_path / "sagactl.db", RUNS)
        with serve(tmp_path, env, "--no-resume") as (url, _pid), httpx.Client(base_url=url) as c:
            middle = f"{time.time() - RUNS / 2!r}|z"  # a cursor half way down the list
            queries = [
                {"limit": 50},
                {"limit": 50, "state": "compensated"},
                {"limit": 50, "before": middle},
                {"limit": 50, "q": "app-42"},
                {"limit": 50, "saga": "saga-3", "state": "succeeded"},
            ]
            latencies: list[float] = []
            searches: list[float] = []
            floor: list[float] = []

            def requests() -> None:
                for i in range(REQUESTS):
                    query = queries[i % len(queries)]
                    start = time.perf_counter()
                    answer = c.get("/api/runs", params=query)
                    (searches if "q" in query else latencies).append(time.perf_counter() - start)
                    assert answer.status_code == 200 and len(answer.json()["runs"]) == 50
                    start = time.perf_counter()
                    c.get("/healthz")
                    floor.append(time.perf_counter() - start)

            benchmark.pedantic(requests, rounds=1, warmup_rounds=0)
            p50, p99 = _quantiles(latencies)
            f50, f99 = _quantiles(floor)
            s50, s99 = _quantiles(searches)
            benchmark.extra_info.update(
                search_p50_ms=s50 * 1e3,
                search_p99_ms=s99 * 1e3,
                key="runs_page",
                units=REQUESTS,
                p50_ms=p50 * 1e3,
                p99_ms=p99 * 1e3,
                healthz_p50_ms=f50 * 1e3,
                healthz_p99_ms=f99 * 1e3,
            )

    def test_event_latency_commit_to_sse(self, benchmark: Any, tmp_path: Path) -> None:
        """Builds followed over SSE from the record after the last one logged when the
        upload was answered: each record's arrival minus its time in the log."""
        from sagactl.plugins.builders.baseimage import make_oci_base

        base = make_oci_base(tmp_path / "busybox")
        env = {**environment(tmp_path), "SAGACTL_BASE_IMAGE_STATIC": base}
        body = site_tar()
        lags: list[float] = []
        with serve(tmp_path, env) as (url, _pid), httpx.Client(base_url=url, timeout=120) as c:

            def follow_builds() -> None:
                for n in range(BUILDS):
                    run_id = c.post(f"/api/apps/lag-{n}/builds", content=body).json()["run_id"]
                    seen = len(c.get(f"/api/runs/{run_id}/events").json()["events"])
                    headers = {"Last-Event-ID": str(seen)}
                    with c.stream("GET", f"/api/runs/{run_id}/stream", headers=headers) as live:
                        for line in live.iter_lines():
                            if line.startswith("event: end"):
                                break
                            if line.startswith("data: ") and line.startswith('data: {"seq":'):
                                event = json.loads(line[6:])
                                if event["seq"]:
                                    lags.append(time.time() - event["at"])

            benchmark.pedantic(follow_builds, rounds=1, warmup_rounds=0)
        assert len(lags) >= BUILDS * 5
        p50, p99 = _quantiles(lags)
        benchmark.extra_info.update(
            key="sse_latency", units=len(lags), p50_ms=p50 * 1e3, p99_ms=p99 * 1e3
        )


def site_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(Path(__file__).resolve().parents[1] / "examples" / "static-site", arcname=".")
    return buffer.getvalue()
