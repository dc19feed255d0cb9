"""The ratios issues 3, 4 and 12 ask for, computed from one benchmark session's results.

Each benchmark tags itself with `extra_info["key"]` (what it measured) and
`extra_info["units"]` (actions, sagas or bytes handled per round). The conftest prints the
table at the end of the session; for a saved run:

    .venv/bin/python benchmarks/report.py results.json   # from --benchmark-json=results.json

Times are medians (robust on a shared machine). Standard library only, so it runs as a script.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Result:
    """One benchmark's figures: seconds per round, and how much work a round did."""

    key: str
    seconds: float
    units: float
    extra: Mapping[str, Any]

    @property
    def per_unit(self) -> float:
        return self.seconds / self.units


def results_from(benchmarks: Iterable[Mapping[str, Any]]) -> dict[str, Result]:
    """Results by key from pytest-benchmark's JSON `benchmarks` list (or the same shape)."""
    found: dict[str, Result] = {}
    for bench in benchmarks:
        extra = bench.get("extra_info") or {}
        key = extra.get("key")
        if key is None:
            continue
        found[key] = Result(
            key=key,
            seconds=float(bench["stats"]["median"]),
            units=float(extra.get("units", 1)),
            extra=extra,
        )
        if "baseline_key" in extra:  # timed between this benchmark's rounds (pairing.py)
            found[extra["baseline_key"]] = Result(
                key=extra["baseline_key"],
                seconds=float(extra["baseline_seconds"]),
                units=float(extra["baseline_units"]),
                extra={},
            )
    return found


@dataclass(frozen=True, slots=True)
class Ratio:
    """One line of the report: a figure, how it is shown, its target."""

    issue: int
    label: str
    needs: tuple[str, ...]
    value: Callable[[Mapping[str, Result]], float]
    unit: str
    target: str
    met: Callable[[float], bool] | None


def _us(seconds: float) -> float:
    return seconds * 1e6


def _checked_ratios(key: str, label: str) -> tuple[Ratio, ...]:
    """Issue 14's figures for one engine on the 11-step schema-checked saga (`key`) and
    the floor between its rounds."""
    floor = key.replace("sagactl_", "floor_")
    return (
        Ratio(14, f"{label}: sagactl per saga", (key,), _ms_per_round(key), "ms", "", None),
        Ratio(
            14,
            f"{label}: sagactl / floor (11 commits), per saga",
            (key, floor),
            lambda r: r[key].seconds / r[floor].seconds,
            "x",
            "<= 2",
            lambda v: v <= 2.0,
        ),
        Ratio(
            14,
            f"{label}: process CPU per action",
            (key,),
            lambda r: _us(float(r[key].extra["cpu_per_action"])),
            "µs",
            "<= 150",
            lambda v: v <= 150.0,
        ),
        Ratio(
            14,
            f"{label}: the floor's CPU per action (1 commit each)",
            (key,),
            lambda r: _us(float(r[key].extra.get("floor_cpu_per_action", "nan"))),
            "µs",
            "reported",
            None,
        ),
        Ratio(
            14,
            f"{label}: of which in the kernel (mean)",
            (key,),
            lambda r: _us(float(r[key].extra.get("kernel_cpu_per_action", "nan"))),
            "µs",
            "reported",
            None,
        ),
        Ratio(
            14,
            f"{label}: the floor's kernel CPU per action (mean)",
            (key,),
            lambda r: _us(float(r[key].extra.get("floor_kernel_cpu_per_action", "nan"))),
            "µs",
            "reported",
            None,
        ),
        Ratio(
            14,
            f"{label}: log commits per action",
            (key,),
            lambda r: float(r[key].extra.get("commits_per_action", "nan")),
            "",
            "reported",
            None,
        ),
        Ratio(
            14,
            f"{label}: CPU per action beyond its commits",
            (key,),
            lambda r: _us(_beyond_commits(r[key].extra)),
            "µs",
            "reported",
            None,
        ),
        Ratio(
            14,
            f"{label}: the stack floor's CPU per action (its parts, no engine)",
            (key,),
            lambda r: _us(float(r[key].extra.get("stack_floor_cpu_per_action", "nan"))),
            "µs",
            "reported",
            None,
        ),
        Ratio(
            14,
            f"{label}: CPU per action beyond the stack floor's",
            (key,),
            lambda r: _us(
                float(r[key].extra["cpu_per_action"])
                - float(r[key].extra.get("stack_floor_cpu_per_action", "nan"))
            ),
            "µs",
            "reported",
            None,
        ),
    )


def _beyond_commits(extra: Mapping[str, object]) -> float:
    """The engine's own CPU per action: its CPU less what its commits cost at the floor's
    CPU per commit, measured in the same rounds (what an fsync costs in CPU varies by VM
    and by the disk's load more than Python does)."""
    commit_cpu = float(str(extra.get("floor_cpu_per_action", "nan")))
    commits = float(str(extra.get("commits_per_action", "nan")))
    return float(str(extra["cpu_per_action"])) - commit_cpu * commits


def _ms_per_round(key: str) -> Callable[[Mapping[str, Result]], float]:
    return lambda r: r[key].seconds * 1e3


def _overhead_per_action(r: Mapping[str, Result]) -> float:
    return r["sagactl_build"].per_unit - r["plain_build"].per_unit


RATIOS: tuple[Ratio, ...] = (
    Ratio(
        12,
        "child saga call / inline action, per call (chain of 20)",
        ("sagactl_child_calls", "sagactl_inline_calls"),
        lambda r: r["sagactl_child_calls"].per_unit / r["sagactl_inline_calls"].per_unit,
        "x",
        "reported",
        None,
    ),
    Ratio(
        12,
        "child saga: added cost per call",
        ("sagactl_child_calls", "sagactl_inline_calls"),
        lambda r: _us(r["sagactl_child_calls"].per_unit - r["sagactl_inline_calls"].per_unit),
        "µs",
        "reported",
        None,
    ),
    Ratio(
        3,
        "plain call per action",
        ("plain_build",),
        lambda r: _us(r["plain_build"].per_unit),
        "µs",
        "baseline (a)",
        None,
    ),
    Ratio(
        3,
        "fsync'd commit (floor) per action, own test",
        ("floor_commit",),
        lambda r: _us(r["floor_commit"].per_unit),
        "µs",
        "baseline (b)",
        None,
    ),
    Ratio(
        3,
        "fsync'd commit (floor) per action, between saga rounds",
        ("floor_build",),
        lambda r: _us(r["floor_build"].per_unit),
        "µs",
        "baseline (b)",
        None,
    ),
    Ratio(
        3,
        "sagactl per action, one 11-action saga",
        ("sagactl_build",),
        lambda r: _us(r["sagactl_build"].per_unit),
        "µs",
        "",
        None,
    ),
    Ratio(
        3,
        "sagactl overhead per action / plain call",
        ("sagactl_build", "plain_build"),
        lambda r: _overhead_per_action(r) / r["plain_build"].per_unit,
        "x",
        "reported",
        None,
    ),
    Ratio(
        3,
        "sagactl overhead per action / fsync floor",
        ("sagactl_build", "plain_build", "floor_build"),
        lambda r: _overhead_per_action(r) / r["floor_build"].per_unit,
        "x",
        "<= 2",
        lambda v: v <= 2.0,
    ),
    Ratio(
        3,
        "500 sagas in flight: durable actions/s / floor commits/s",
        ("sagactl_500", "floor_500"),
        lambda r: r["floor_500"].per_unit / r["sagactl_500"].per_unit,
        "x",
        ">= 1",
        lambda v: v >= 1.0,
    ),
    Ratio(
        3,
        "500 sagas in flight: durable actions/s",
        ("sagactl_500",),
        lambda r: 1.0 / r["sagactl_500"].per_unit,
        "/s",
        "",
        None,
    ),
    Ratio(
        3,
        "500 sagas in flight: floor commits/s between their rounds",
        ("floor_500",),
        lambda r: 1.0 / r["floor_500"].per_unit,
        "/s",
        "",
        None,
    ),
    Ratio(
        3,
        "per action: 300 independent / 300-chain",
        ("sagactl_independent", "sagactl_chain"),
        lambda r: r["sagactl_independent"].per_unit / r["sagactl_chain"].per_unit,
        "x",
        "<= 0.5",
        lambda v: v <= 0.5,
    ),
    Ratio(
        12,
        "sagactl per element, 10,000-element fan-out",
        ("sagactl_fan_out",),
        lambda r: _us(r["sagactl_fan_out"].per_unit),
        "µs",
        "",
        None,
    ),
    Ratio(
        12,
        "sagactl per action, 300 independent (between fan-out rounds)",
        ("sagactl_independent_paired",),
        lambda r: _us(r["sagactl_independent_paired"].per_unit),
        "µs",
        "",
        None,
    ),
    Ratio(
        12,
        "per element: 10,000-element fan-out / per action: 300 independent",
        ("sagactl_fan_out", "sagactl_independent_paired"),
        lambda r: r["sagactl_fan_out"].per_unit / r["sagactl_independent_paired"].per_unit,
        "x",
        "<= 1.5",
        lambda v: v <= 1.5,
    ),
    *(
        Ratio(
            3,
            f"per saga: {label}, 11-action build DAG",
            (key,),
            _ms_per_round(key),
            "ms",
            "",
            None,
        )
        for key, label in (
            ("sagactl_build", "sagactl"),
            ("taskflow_build", "TaskFlow (SQLite)"),
            ("dbos_build", "DBOS (SQLite)"),
        )
    ),
    Ratio(
        3,
        "per saga: sagactl / TaskFlow (SQLite)",
        ("sagactl_build", "taskflow_build"),
        lambda r: r["sagactl_build"].seconds / r["taskflow_build"].seconds,
        "x",
        "< 1",
        lambda v: v < 1.0,
    ),
    Ratio(
        3,
        "per saga: sagactl / DBOS (SQLite)",
        ("sagactl_build", "dbos_build"),
        lambda r: r["sagactl_build"].seconds / r["dbos_build"].seconds,
        "x",
        "< 1",
        lambda v: v < 1.0,
    ),
    Ratio(
        4,
        "staging from a pipe: throughput / cat > file + fsync",
        ("staging_pipe", "staging_cat"),
        lambda r: r["staging_cat"].per_unit / r["staging_pipe"].per_unit,
        "x",
        ">= 0.9",
        lambda v: v >= 0.9,
    ),
    Ratio(
        4,
        "staging from a pipe: MB/s",
        ("staging_pipe",),
        lambda r: 1.0 / r["staging_pipe"].per_unit / 1e6,
        "MB/s",
        "",
        None,
    ),
    Ratio(
        4,
        "staging: peak RSS of the staging process",
        ("staging_pipe",),
        lambda r: float(r["staging_pipe"].extra["peak_rss_mb"]),
        "MB",
        "< 100",
        lambda v: v < 100.0,
    ),
    Ratio(
        4,
        "build-from-tar: time added by the engine",
        ("build_saga", "build_direct"),
        lambda r: (r["build_saga"].seconds / r["build_direct"].seconds - 1.0) * 100.0,
        "%",
        "<= 5",
        lambda v: v <= 5.0,
    ),
    Ratio(
        4,
        "8 builds (oci): speed-up of concurrent over sequential",
        ("builds_concurrent", "builds_sequential"),
        lambda r: r["builds_sequential"].seconds / r["builds_concurrent"].seconds,
        "x",
        "reported",
        None,
    ),
    Ratio(
        11,
        "1 GiB upload over HTTP: throughput / curl to a file sink",
        ("serve_upload", "sink_upload"),
        lambda r: r["sink_upload"].per_unit / r["serve_upload"].per_unit,
        "x",
        ">= 0.8",
        lambda v: v >= 0.8,
    ),
    Ratio(
        11,
        "upload over HTTP: MB/s",
        ("serve_upload",),
        lambda r: 1.0 / r["serve_upload"].per_unit / 1e6,
        "MB/s",
        "",
        None,
    ),
    Ratio(
        11,
        "upload over HTTP: peak RSS of serve",
        ("serve_upload",),
        lambda r: float(r["serve_upload"].extra["peak_rss_mb"]),
        "MB",
        "flat",
        None,
    ),
    *(
        Ratio(
            11,
            f"GET /api/runs at 100,000 runs (pages, filters): {q}",
            ("runs_page",),
            lambda r, q=q: float(r["runs_page"].extra[f"{q}_ms"]),
            "ms",
            "< 50" if q == "p99" else "",
            (lambda v: v < 50.0) if q == "p99" else None,
        )
        for q in ("p50", "p99")
    ),
    Ratio(
        11,
        "GET /api/runs?q=APP (1 run in 1,000 matches): p99",
        ("runs_page",),
        lambda r: float(r["runs_page"].extra["search_p99_ms"]),
        "ms",
        "",
        None,
    ),
    Ratio(
        11,
        "GET /healthz alongside (HTTP floor): p99",
        ("runs_page",),
        lambda r: float(r["runs_page"].extra["healthz_p99_ms"]),
        "ms",
        "",
        None,
    ),
    Ratio(
        11,
        "event latency, commit to SSE client: p99",
        ("sse_latency",),
        lambda r: float(r["sse_latency"].extra["p99_ms"]),
        "ms",
        "< 100",
        lambda v: v < 100.0,
    ),
    Ratio(
        15,
        "buildah image: first build over source-only rebuild",
        ("image_rebuild_source_only", "image_first_build"),
        lambda r: r["image_first_build"].seconds / r["image_rebuild_source_only"].seconds,
        "x",
        ">= 5",
        lambda v: v >= 5.0,
    ),
    Ratio(
        15,
        "runc image root ready: first version / a new version",
        ("image_unpack_new_version", "image_unpack_first_version"),
        lambda r: r["image_unpack_first_version"].seconds / r["image_unpack_new_version"].seconds,
        "x",
        "reported",
        None,
    ),
    Ratio(
        15,
        "redeploy (runc): longest window with neither version serving",
        ("redeploy",),
        lambda r: float(r["redeploy"].extra["max_gap_seconds"]) * 1e3,
        "ms",
        "none (0)",
        lambda v: v == 0.0,
    ),
    Ratio(
        15,
        "redeploy (runc): new version healthy -> old stopped, median",
        ("redeploy",),
        lambda r: float(r["redeploy"].extra["healthy_to_old_stopped_median"]) * 1e3,
        "ms",
        "reported",
        None,
    ),
    Ratio(
        15,
        "sandbox start to healthy (and stop): runc / host process",
        ("sandbox_runc_start_healthy_stop", "sandbox_local_start_healthy_stop"),
        lambda r: (
            r["sandbox_runc_start_healthy_stop"].seconds
            / r["sandbox_local_start_healthy_stop"].seconds
        ),
        "x",
        "reported",
        None,
    ),
    *(
        ratio
        for shape in ("chain", "lattice")
        for fmt in ("text", "dot")
        for ratio in (
            Ratio(
                10,
                f"graph --format {fmt}, 10,000-action {shape}: drawing",
                (f"graph_{shape}_{fmt}",),
                lambda r, k=f"graph_{shape}_{fmt}": r[k].seconds,
                "s",
                "< 2",
                lambda v: v < 2.0,
            ),
            Ratio(
                10,
                f"graph --format {fmt}, 10,000-action {shape}: drawing / validate",
                (f"graph_{shape}_{fmt}", f"validate_{shape}_{fmt}"),
                lambda r, k=f"{shape}_{fmt}": r[f"graph_{k}"].seconds / r[f"validate_{k}"].seconds,
                "x",
                "reported",
                None,
            ),
        )
    ),
    *(
        ratio
        for key, label in (
            ("sagactl_build_checked", "11-step checked"),
            ("sagactl_build_checked_on_loop", "11-step checked, on the loop"),
        )
        for ratio in _checked_ratios(key, label)
    ),
    Ratio(
        14,
        "11-step: DBOS (SQLite WAL) / sagactl checked, per saga",
        ("sagactl_build_checked", "dbos_build"),
        lambda r: r["dbos_build"].seconds / r["sagactl_build_checked"].seconds,
        "x",
        ">= 8",
        lambda v: v >= 8.0,
    ),
    *(
        ratio
        for key, label in (
            ("outside_chain_tty", "300-chain, run on a tty"),
            ("outside_chain_pipe", "300-chain, run on a pipe"),
            ("outside_wide_tty", "300-wide, run on a tty"),
        )
        for ratio in (
            Ratio(
                14,
                f"{label}: per action by run stamps / floor",
                (key, f"{key}_floor"),
                lambda r, k=key: float(r[k].extra["stamps_per_action"]) / r[f"{k}_floor"].per_unit,
                "x",
                "<= 2",
                lambda v: v <= 2.0,
            ),
            Ratio(
                14,
                f"{label}: process wall per action / floor",
                (key, f"{key}_floor"),
                lambda r, k=key: r[k].per_unit / r[f"{k}_floor"].per_unit,
                "x",
                "reported",
                None,
            ),
        )
    ),
    *(
        Ratio(
            14,
            f"start-up: sagactl {command} / python -c pass",
            (f"startup_{key}", f"startup_pass_{key}"),
            lambda r, k=key: r[f"startup_{k}"].seconds / r[f"startup_pass_{k}"].seconds,
            "x",
            f"<= {limit:g}",
            lambda v, limit=limit: v <= limit,
        )
        for key, command, limit in (
            ("version", "--version", 3),
            ("status", "status RUN", 5),
            ("list", "list", 5),
            ("logs", "logs RUN", 5),
            ("validate", "validate FILE", 8),
        )
    ),
    *(
        Ratio(
            14,
            f"{backend} at 1M runs / near-empty: {what}",
            (f"scale_{backend}_{op}", f"scale_{backend}_{op}_small"),
            lambda r, k=f"scale_{backend}_{op}": r[k].seconds / r[f"{k}_small"].seconds,
            "x",
            "<= 2",
            lambda v: v <= 2.0,
        )
        for backend in ("sqlite", "postgresql")
        for op, what in (
            ("list", "list --limit 50"),
            ("page", "first page, newest"),
            ("page_state", "first page of a state"),
            ("status", "status reads"),
            ("logs", "logs"),
            ("claim", "claim + release"),
            ("prune_page", "prune page of 100"),
        )
    ),
)


def lines(results: Mapping[str, Result]) -> list[str]:
    """The report, one line per ratio: value, target and verdict, or what was not measured."""
    out = []
    for issue in sorted({ratio.issue for ratio in RATIOS}):
        out.append(f"issue {issue}:")
        for ratio in (r for r in RATIOS if r.issue == issue):
            missing = [key for key in ratio.needs if key not in results]
            if missing:
                out.append(f"  {ratio.label:<58} not measured ({', '.join(missing)})")
                continue
            value = ratio.value(results)
            verdict = "" if ratio.met is None else ("  met" if ratio.met(value) else "  MISSED")
            target = f"  target {ratio.target}" if ratio.target else ""
            out.append(f"  {ratio.label:<58} {value:>10.3f} {ratio.unit:<4}{target}{verdict}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: report.py RESULTS.json  (from pytest --benchmark-json)", file=sys.stderr)
        return 2
    data = json.loads(Path(argv[0]).read_text())
    print("\n".join(lines(results_from(data["benchmarks"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
