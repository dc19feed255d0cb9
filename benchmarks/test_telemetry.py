"""Issue 13: what tracing costs per action (on vs off, in the same run), and how fast
retention prunes on both stores while sagas run, and what it does to their throughput.

Figures are printed and kept in `extra_info`; nothing here asserts a time.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga
from sagactl.engine.api import Engine

from .otlp_sink import otlp_sink

ACTIONS = 20
ROUNDS = 60


class Noop(Action):
    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {}


def chain(n: int, name: str = "chain") -> CompiledSaga:
    specs = {}
    for i in range(n):
        needs = (f"a{i - 1}",) if i else ()
        specs[f"a{i}"] = ActionSpec(
            name=f"a{i}", uses="noop", needs=needs, depends_on=frozenset(needs)
        )
    return CompiledSaga(name=name, version=1, actions=specs)


def test_tracing_cost_per_action(benchmark: Any, tmp_path: Path) -> None:
    """The same chain run with tracing off and on, alternately in one process and store,
    the order swapped every pair; each traced round against the untraced one of its pair.

    Spans are exported while the rounds run, with the default batching (512 spans), to a
    receiver in another process (receiving is the collector's work). CPU time is the whole
    process's, the store's writer thread included, except the exporter thread's: that is
    counted apart, with the flush of what is left at the end, and added in full to every
    traced action. Wall times are the rounds' own (the exporter runs beside them)."""
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    saga = chain(ACTIONS)

    async def measure(sink: str) -> dict[str, float]:
        from sagactl.engine.otel import OtelTracing

        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink
        try:
            tracing = OtelTracing.from_env()
        finally:
            del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
        ident = tracing.spans.thread.ident
        assert ident is not None
        exporter = time.pthread_getcpuclockid(ident)
        wall: dict[str, list[float]] = {"off": [], "on": []}
        cpu: dict[str, list[float]] = {"off": [], "on": []}
        async with Engine(tmp_path / "runs.db", actions={"noop": Noop()}) as engine:
            assert engine.options.tracing is None  # no exporter configured: nothing at all
            await engine.run(saga)  # warm-up
            engine.options.tracing = tracing
            await engine.run(saga)
            tracing.flush()
            exported = time.clock_gettime(exporter)
            for i in range(ROUNDS):
                for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
                    engine.options.tracing = tracing if mode == "on" else None
                    began, spent = time.perf_counter(), time.process_time()
                    beside = time.clock_gettime(exporter)
                    result = await engine.run(saga)
                    wall[mode].append((time.perf_counter() - began) / ACTIONS)
                    beside = time.clock_gettime(exporter) - beside
                    cpu[mode].append((time.process_time() - spent - beside) / ACTIONS)
                    assert result.state == "succeeded"
        flushing = time.thread_time()
        tracing.flush()
        flushed = time.thread_time() - flushing
        export = (time.clock_gettime(exporter) - exported + flushed) / (ROUNDS * ACTIONS)
        figures = {f"{mode}_cpu": statistics.median(values) for mode, values in cpu.items()}
        figures |= {mode: statistics.median(values) for mode, values in wall.items()}
        figures["export_cpu"] = export
        figures["paired"] = statistics.median(
            on / off for off, on in zip(wall["off"], wall["on"], strict=True)
        )
        figures["paired_cpu"] = statistics.median(
            (on + export) / off for off, on in zip(cpu["off"], cpu["on"], strict=True)
        )
        # Means too: a cost paid in a few rounds (a batch encoded and posted beside them)
        # escapes the medians.
        figures["mean_cpu"] = (statistics.fmean(cpu["on"]) + export) / statistics.fmean(cpu["off"])
        figures["alone_cpu"] = tracing_alone(tracing) + export
        return figures

    with otlp_sink() as sink:
        figures = benchmark.pedantic(lambda: anyio.run(measure, sink), rounds=1, iterations=1)
    added_cpu = (figures["on_cpu"] + figures["export_cpu"]) / figures["off_cpu"] - 1
    alone = figures["alone_cpu"] / figures["off_cpu"]
    benchmark.extra_info.update(
        {
            f"{k}_us_per_action": v * 1e6
            for k, v in figures.items()
            if "paired" not in k and "mean" not in k
        },
        added_wall_paired=figures["paired"] - 1,
        added_cpu=added_cpu,
        added_cpu_paired=figures["paired_cpu"] - 1,
        added_cpu_means=figures["mean_cpu"] - 1,
        added_cpu_alone=alone,
        load_average=os.getloadavg()[0],
    )
    print(
        f"\ntracing (load {os.getloadavg()[0]:.1f}): CPU {figures['off_cpu'] * 1e6:.0f}"
        f" -> {figures['on_cpu'] * 1e6:.0f} + export {figures['export_cpu'] * 1e6:.1f}"
        f" us/action: paired {figures['paired_cpu'] - 1:+.1%} (medians {added_cpu:+.1%},"
        f" means {figures['mean_cpu'] - 1:+.1%});"
        f" wall {figures['off'] * 1e6:.0f} -> {figures['on'] * 1e6:.0f} us/action: paired"
        f" {figures['paired'] - 1:+.1%}; the tracing calls in a loop, with the export"
        f" {figures['alone_cpu'] * 1e6:.1f} us/action: {alone:+.1%}"
    )


def tracing_alone(tracing: Any, runs: int = 200) -> float:
    """CPU seconds per action of the tracing calls one run of the chain makes (a
    segment, an attempt span per action, the run's span) in a loop, without the engine
    around them: with warm caches, so a floor that the engine's own figure stays well above
    (in the engine every call runs with caches the engine's other work evicted)."""
    began = time.thread_time()  # this thread's: the exporter encodes and posts beside it
    for i in range(runs):
        run_id = f"alone-{i}"
        segment = tracing.segment(run_id, "chain", None, 1)
        for n in range(ACTIONS):
            with segment.attempt(f"a{n}", 1, f"{run_id}/a{n}", compensating=False) as span:
                span.succeeded()
        segment.end("succeeded")
        tracing.finished(run_id, "chain", "succeeded", 1.0, 2.0)
    spent = time.thread_time() - began
    tracing.spans.flush()  # not timed: the export is counted once, above
    return spent / (runs * ACTIONS)


def test_an_attempt_span_hot_and_cold(benchmark: Any) -> None:
    """Why the tracing calls cost more in the engine than in a loop: one attempt span
    recorded and encoded in a loop, then with other work between two spans (a walk over a
    few MB and some unrelated Python, as the engine's event loop, store and threads do
    between two attempts), which evicts the caches the tracing code and its tables use.
    Recording and encoding are timed apart (the engine records; the exporter encodes a
    batch at a time, so in a loop)."""
    from opentelemetry.sdk.trace import TracerProvider
    from sagactl.engine.otel import OtelTracing
    from sagactl.engine.otlp_export import SpanBatcher
    from sagactl.engine.otlp_wire import Envelope

    nowhere = SpanBatcher(lambda body: None, Envelope({}, "bench"), delay=3600, batch=10**6)
    tracing = OtelTracing(TracerProvider(), nowhere)
    memory = bytearray(8 << 20)
    unrelated = [{"k": [i, str(i), {"x": i / 3}]} for i in range(2000)]

    def other_work() -> None:
        memory[::4096] = bytes(len(range(0, len(memory), 4096)))
        statistics.fmean(len(repr(d)) for d in unrelated[:400])

    def spans(cold: bool, runs: int = 100) -> dict[str, float]:
        recorded = encoded = 0.0
        for i in range(runs):
            segment = tracing.segment(f"hot-cold-{i}", "chain", None, 1)
            for n in range(ACTIONS):
                if cold:
                    other_work()
                began = time.thread_time()
                with segment.attempt(f"a{n}", 1, f"hot-cold-{i}/a{n}", compensating=False) as a:
                    a.succeeded()
                recorded += time.thread_time() - began
                if cold:
                    other_work()
                began = time.thread_time()
                a.encoded()
                encoded += time.thread_time() - began
        return {"record": recorded / (runs * ACTIONS), "encode": encoded / (runs * ACTIONS)}

    def measure() -> dict[str, float]:
        spans(False)  # warm-up
        hot, cold = spans(False), spans(True)
        return {f"{k}_hot": v for k, v in hot.items()} | {f"{k}_cold": v for k, v in cold.items()}

    try:
        figures = benchmark.pedantic(measure, rounds=1, iterations=1)
    finally:
        nowhere.shutdown()
    benchmark.extra_info.update({f"{k}_us": v * 1e6 for k, v in figures.items()})
    print(
        f"\nan attempt span (load {os.getloadavg()[0]:.1f}): recorded in"
        f" {figures['record_hot'] * 1e6:.1f} us hot, {figures['record_cold'] * 1e6:.1f} us"
        f" cold; encoded in {figures['encode_hot'] * 1e6:.1f} us hot,"
        f" {figures['encode_cold'] * 1e6:.1f} us cold"
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'runs.db'}"
        return
    import psycopg

    # A schema of our own in the database `$SAGACTL_TEST_PG` names, dropped afterwards.
    url = os.environ.get("SAGACTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    schema = f"bench_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {url}: {exc}")
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


PRUNABLE = 2000


@pytest.mark.timeout(900)
def test_prune_rate_while_sagas_run(benchmark: Any, db: str) -> None:
    """2,000 old finished runs pruned (pages of 100) while sagas run; sagas/s with and
    without pruning alongside."""
    saga = chain(3)

    async def measure() -> dict[str, float]:
        async with Engine(db, actions={"noop": Noop()}) as engine:

            async def some(n: int) -> None:
                for _ in range(n):
                    await engine.run(saga)

            async with anyio.create_task_group() as group:
                for _ in range(20):
                    group.start_soon(some, PRUNABLE // 20)
            async with engine.store.transaction() as tx:
                await tx.execute("UPDATE runs SET finished = ?", (time.time() - 7 * 86400,))

            async def sagas_for(seconds: float) -> float:
                done, end = 0, time.perf_counter() + seconds
                while time.perf_counter() < end:
                    await engine.run(saga)
                    done += 1
                return done / seconds

            alone = await sagas_for(2.0)
            pruned = 0
            timing: dict[str, float] = {}

            async def prune() -> None:
                nonlocal pruned
                began = time.perf_counter()
                pruned = await engine.prune(86400, page=100)
                timing["prune"] = time.perf_counter() - began

            async with anyio.create_task_group() as group:
                group.start_soon(prune)
                began = time.perf_counter()
                done = 0
                while "prune" not in timing:
                    await engine.run(saga)
                    done += 1
                beside = done / (time.perf_counter() - began)
        assert pruned == PRUNABLE
        return {"prune_rate": pruned / timing["prune"], "alone": alone, "beside": beside}

    figures = benchmark.pedantic(lambda: anyio.run(measure), rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    print(
        f"\nprune on {db.split(':')[0]}: {figures['prune_rate']:.0f} runs/s while sagas run;"
        f" sagas {figures['alone']:.0f}/s alone, {figures['beside']:.0f}/s beside pruning"
    )


LONG_KEPT = 20_000
EXPIRED = 1_000
PREVIOUS_PAGE_SQL = (
    "SELECT run_id FROM runs WHERE finished IS NOT NULL"
    " AND finished < ? - coalesce(retention, CAST(? AS DOUBLE PRECISION))"
    " ORDER BY finished LIMIT ?"
)
"""How a page of expired runs was found before the expiry indexes (migration 9): in
`finished` order, stepping over every long-kept run that finished earlier."""


@pytest.mark.timeout(900)
def test_finding_a_page_of_expired_runs(benchmark: Any, db: str) -> None:
    """20,000 runs kept a year, finished a month ago, and 1,000 runs kept a day, finished
    two days ago: the time to find one page of 100 expired runs, by the previous query
    and by the expiry index, alternately in the same store."""
    from sagactl.engine.store.pruning import prune_candidates

    async def measure() -> dict[str, float]:
        async with Engine(db, actions={"noop": Noop()}) as engine:
            store = engine.store
            now = time.time()
            rows = [(f"long-{i}", 365 * 86400.0, now - 30 * 86400) for i in range(LONG_KEPT)]
            rows += [(f"gone-{i}", 86400.0, now - 2 * 86400 + i) for i in range(EXPIRED)]
            for start in range(0, len(rows), 2000):
                async with store.transaction() as tx:
                    for run_id, retention, finished in rows[start : start + 2000]:
                        await tx.execute(
                            "INSERT INTO runs (run_id, saga, state, definition_hash,"
                            " definition, inputs, plugin_versions, created, updated,"
                            " finished, retention) VALUES (?, 'kept', 'succeeded', 'h', '{}',"
                            " '{}', '{}', ?, ?, ?, ?)",
                            (run_id, finished, finished, finished, retention),
                        )
            if store.dialect == "postgresql":
                async with store.transaction() as tx:
                    await tx.execute("ANALYZE runs")
            lock = " FOR UPDATE SKIP LOCKED" if store.dialect == "postgresql" else ""
            previous = (PREVIOUS_PAGE_SQL + lock, [now, 86400.0, 100])
            ((sql, params),) = prune_candidates(
                store.dialect, now=now, finished_before=None, default_retention=None, keep=()
            )
            indexed = (sql, [*params, 100])
            times: dict[str, list[float]] = {"previous": [], "indexed": []}
            for _ in range(15):
                for name, (query, args) in (("previous", previous), ("indexed", indexed)):
                    async with store.transaction() as tx:
                        began = time.perf_counter()
                        found = await tx.fetchall(query, args)
                        times[name].append(time.perf_counter() - began)
                    assert len(found) == 100 and all(str(r[0]).startswith("gone-") for r in found)
        return {name: statistics.median(values) for name, values in times.items()}

    figures = benchmark.pedantic(lambda: anyio.run(measure), rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    print(
        f"\npage of expired runs on {db.split(':')[0]} past {LONG_KEPT} long-kept ones:"
        f" previous query {figures['previous'] * 1e3:.2f} ms, expiry index"
        f" {figures['indexed'] * 1e3:.2f} ms ({figures['previous'] / figures['indexed']:.0f}x)"
    )
