"""Issue 14: the store at a million finished runs, against the same store nearly empty.

Two stores per backend, filled by `bulk_store` (copies of one real run): the big one with
`$SAGACTL_SCALE_RUNS` runs (default 1,000,000; about 13 log records each), the small one
with 2,000. Each benchmark times the reads behind one user-facing operation on the big
store, with the same operation on the small store timed just before every round
(`pairing.py`); the target is within 2x. The plans behind them are checked in
`tests/store/test_query_plans.py`.

    SAGACTL_SCALE_RUNS=1000000 .venv/bin/pytest benchmarks/test_store_scale.py --benchmark-only -s

Filling takes a minute or two per backend and store; the stores are made once per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sagactl.engine.api import Engine
from sagactl.engine.store import Store, open_store

from .bulk_store import TEMPLATE, Layout, copy_statements, fill_postgresql, fill_sqlite, layout
from .pairing import paired
from .workloads import NOOP_USES, Dag, NoopAction

BIG = int(os.environ.get("SAGACTL_SCALE_RUNS", "1000000"))
SMALL = 2_000
QUEUED = 4
"""Runs left queued in each store, for the claims."""
PRUNED_PER_ROUND = 100
ROUNDS = 12

# Filling a million runs (13 million records) takes minutes, on PostgreSQL above all: the
# suite's 120 s per test would stop it in the module's fixture.
pytestmark = pytest.mark.timeout(1800)
SHAPE = Dag("scale", {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ("d",)})
UNFINISHED = ["queued", "running", "compensating"]


@dataclass
class Filled:
    url: str
    where: Layout
    seconds: float
    """Time taken to fill it."""
    events: int
    """Log records per copied run."""


async def _template(url: str) -> int:
    """The run the copies are made of, plus the queued runs; returns its log length."""
    async with Engine(url, actions={NOOP_USES: NoopAction()}) as engine:
        saga = SHAPE.compiled()
        await engine.run(saga, run_id=TEMPLATE)
        for n in range(QUEUED):
            await engine.start(saga, run_id=f"queued-{n}")
        return len(await engine.log(TEMPLATE))


def _fill(url: str, runs: int, dialect: str) -> Filled:
    events = asyncio.run(_template(url))
    where = layout(runs, days=30)
    started = time.perf_counter()
    statements = copy_statements(dialect, where)
    if dialect == "sqlite":
        fill_sqlite(url.removeprefix("sqlite://"), statements)
    else:
        fill_postgresql(url, statements)
    return Filled(url, where, time.perf_counter() - started, events)


@contextlib.contextmanager
def _pg_database(name: str) -> Iterator[str]:
    import psycopg

    server = os.environ.get("SAGACTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    base = server.rsplit("/", 1)[0]
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {server}: {exc}")
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stores(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Filled, Filled]]:
    """(backend, big store, small store), filled once per module and backend."""
    backend = request.param
    if backend == "sqlite":
        folder = tmp_path_factory.mktemp("scale")
        big = _fill(f"sqlite://{folder / 'big.db'}", BIG, backend)
        small = _fill(f"sqlite://{folder / 'small.db'}", SMALL, backend)
        yield backend, big, small
        return
    with (
        _pg_database("sagactl_scale_big") as big_url,
        _pg_database("sagactl_scale_small") as small_url,
    ):
        yield backend, _fill(big_url, BIG, backend), _fill(small_url, SMALL, backend)


Operation = Callable[[Store, Filled, int], Awaitable[Any]]


async def _list(store: Store, filled: Filled, round_: int) -> Any:
    return await store.list_runs(limit=50)  # `sagactl list --limit 50`


async def _page(store: Store, filled: Filled, round_: int) -> Any:
    return await store.page_runs(limit=50)  # the console's and `GET /api/runs`' first page


async def _page_by_state(store: Store, filled: Filled, round_: int) -> Any:
    return await store.page_runs(states=["succeeded"], limit=50)


def _middle(filled: Filled) -> str:
    return f"bulk-{filled.where.runs // 2:07d}"


async def _status(store: Store, filled: Filled, round_: int) -> Any:
    run_id = _middle(filled)  # what `sagactl status` reads (the fold is size-independent)
    return (
        await store.get_run(run_id),
        await store.read_log(run_id),
        await store.progress(run_id),
    )


async def _logs(store: Store, filled: Filled, round_: int) -> Any:
    return await store.read_log(_middle(filled))


async def _claim(store: Store, filled: Filled, round_: int) -> Any:
    """What `resume --all` (SQLite) or a worker (PostgreSQL) does to take a run."""
    if store.dialect == "sqlite":
        orphans = await store.orphans(UNFINISHED)
        claim = await store.claim(orphans[0])
    else:
        claim = (await store.claim_next(1))[0]
    await store.release(claim)
    return claim


async def _prune_page(store: Store, filled: Filled, round_: int) -> Any:
    """One page of `sagactl prune`: the PRUNED_PER_ROUND oldest runs (fresh each round)."""
    # Half a step before the next copy's end: a cutoff equal to a copy's own end could fall
    # either side of it once PostgreSQL rounds both to microseconds (101 pruned, not 100).
    layout = filled.where
    cutoff = layout.finished(PRUNED_PER_ROUND * (round_ + 1)) - layout.step / 2
    deleted = await store.prune(finished_before=cutoff, page=PRUNED_PER_ROUND)
    assert deleted == PRUNED_PER_ROUND
    return deleted


OPERATIONS: dict[str, Operation] = {
    "list": _list,
    "page": _page,
    "page_state": _page_by_state,
    "status": _status,
    "logs": _logs,
    "claim": _claim,
    "prune_page": _prune_page,
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_scale(
    benchmark: Any,
    runner: asyncio.Runner,
    stores: tuple[str, Filled, Filled],
    operation: str,
) -> None:
    backend, big, small = stores
    call = OPERATIONS[operation]
    big_store, small_store = open_store(big.url), open_store(small.url)
    runner.run(big_store.open())
    runner.run(small_store.open())
    rounds = {"big": 0, "small": 0}

    def on(store: Store, filled: Filled, which: str) -> Callable[[], Any]:
        def once() -> Any:
            done = runner.run(call(store, filled, rounds[which]))
            rounds[which] += 1
            return done

        return once

    try:
        runner.run(call(big_store, big, 0))  # warm: the first read of a table pays its cache
        runner.run(call(small_store, small, 0))
        rounds.update(big=1, small=1)
        paired(
            benchmark,
            on(big_store, big, "big"),
            on(small_store, small, "small"),
            key=f"scale_{backend}_{operation}",
            units=1,
            baseline_key=f"scale_{backend}_{operation}_small",
            baseline_units=1,
            rounds=ROUNDS,
        )
    finally:
        runner.run(big_store.close())
        runner.run(small_store.close())
    benchmark.extra_info.update(
        runs=big.where.runs, events_per_run=big.events, fill_seconds=round(big.seconds, 1)
    )


def test_listing_memory(runner: asyncio.Runner, stores: tuple[str, Filled, Filled]) -> None:
    """Paging through 100,000 runs holds one page at a time: the peak of Python memory
    while walking them is that of a few pages, not of the runs walked."""
    backend, big, _ = stores
    store = open_store(big.url)
    runner.run(store.open())

    async def walk(pages: int) -> int:
        seen, before = 0, None
        for _ in range(pages):
            page = await store.page_runs(limit=500, before=before)
            if not page:
                break
            seen += len(page)
            before = page[-1].cursor
        return seen

    try:
        runner.run(walk(1))
        peaks = {}
        for pages in (1, 200):
            tracemalloc.start()
            walked = runner.run(walk(pages))
            peaks[walked] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    finally:
        runner.run(store.close())
    one, many = peaks[min(peaks)], peaks[max(peaks)]
    print(
        f"\n{backend}: paging peak {one / 1e6:.2f} MB for {min(peaks)} runs,"
        f" {many / 1e6:.2f} MB for {max(peaks)} runs"
    )
    assert many < 4 * one, peaks


def test_reopen_upgrade(stores: tuple[str, Filled, Filled]) -> None:
    """Opening the big store checks and applies the migrations (`sagactl db upgrade`)."""
    backend, big, _ = stores

    async def reopen() -> float:
        started = time.perf_counter()
        async with open_store(big.url) as store:
            await store.upgrade()
        return time.perf_counter() - started

    seconds = asyncio.run(reopen())
    print(
        f"\n{backend}: open + upgrade of {big.where.runs:,} runs took {seconds:.3f} s"
        f" (filled in {big.seconds:.0f} s)"
    )
