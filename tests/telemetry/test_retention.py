"""Retention on both stores: exactly the runs past their retention go, each leaves a
tombstone that refuses its id, and the run that built an app's active version stays."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga
from sagactl.engine.api import Engine
from sagactl.engine.retention import RunPruned

from ..cli.conftest import Cli
from ..cli.conftest import cli as cli
from ..store.conftest import pg_schema

pytestmark = pytest.mark.anyio

DAY = 86400.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'runs.db'}"
    else:
        with pg_schema("ret") as url:
            yield url


class Noop(Action):
    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {}


def saga(name: str, retention: float | None) -> CompiledSaga:
    spec = ActionSpec(name="a", uses="noop")
    return CompiledSaga(name=name, version=1, actions={"a": spec}, retention=retention)


async def age(engine: Engine, run_id: str, days: float) -> None:
    """Make the run look finished `days` ago (the database is the clock of retention)."""
    async with engine.store.transaction() as tx:
        await tx.execute(
            "UPDATE runs SET finished = ? WHERE run_id = ?", (time.time() - days * DAY, run_id)
        )


async def test_prunes_exactly_the_runs_past_their_retention(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saga retention 1d: runs finished 2d ago go, 0.5d ago stay; a saga without its own
    retention is kept forever, until a store-wide default applies; unfinished runs stay."""
    monkeypatch.delenv("SAGACTL_RETENTION", raising=False)
    short, plain = saga("short", DAY), saga("plain", None)
    async with Engine(db, actions={"noop": Noop()}) as engine:
        old = [(await engine.run(short)).run_id for _ in range(3)]
        young = (await engine.run(short)).run_id
        forever = [(await engine.run(plain)).run_id for _ in range(2)]
        queued = await engine.start(short)
        for run_id in [*old, *forever]:
            await age(engine, run_id, 2)
        await age(engine, young, 0.5)

        assert await engine.prune_expired(page=2) == 3
        left = {r.run_id for r in await engine.store.list_runs()}
        assert left == {young, *forever, queued}
        for run_id in old:
            assert await engine.store.tombstone(run_id) is not None
            assert await engine.store.read_log(run_id) == []
        assert await engine.store.tombstone(young) is None

        monkeypatch.setenv("SAGACTL_RETENTION", "1d")
        assert await engine.prune_expired() == 2
        assert {r.run_id for r in await engine.store.list_runs()} == {young, queued}
        assert await engine.prune_expired() == 0


async def test_a_page_reads_only_expired_runs(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both retention queries walk their expiry index (`runs_expiring_own`,
    `runs_expiring_default`): long-kept runs that finished long ago are never read again
    page after page. A long-kept run outlives short-kept runs that finished after it."""
    from sagactl.engine.store.pruning import prune_candidates

    async with Engine(db, actions={"noop": Noop()}) as engine:
        kept = [(await engine.run(saga("long", 365 * DAY))).run_id for _ in range(3)]
        short = [(await engine.run(saga("short", DAY))).run_id for _ in range(3)]
        plain = [(await engine.run(saga("plain", None))).run_id for _ in range(3)]
        for run_id in kept:
            await age(engine, run_id, 30)
        for run_id in short + plain:
            await age(engine, run_id, 2)
        store = engine.store
        queries = prune_candidates(
            store.dialect, now=time.time(), finished_before=None, default_retention=DAY, keep=()
        )
        plans = []
        async with store.transaction() as tx:
            if store.dialect == "postgresql":
                await tx.execute("SET LOCAL enable_seqscan = off")  # tiny table: else a scan
            for sql, params in queries:
                explain = "EXPLAIN " if store.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
                rows = await tx.fetchall(explain + sql, [*params, 100])
                plans.append(" ".join(str(cell) for row in rows for cell in row))
        assert "runs_expiring_own" in plans[0], plans[0]
        assert "runs_expiring_default" in plans[1], plans[1]
        monkeypatch.setenv("SAGACTL_RETENTION", "1d")
        assert await engine.prune_expired(page=2) == 6
        left = {r.run_id for r in await store.list_runs()}
        assert left == set(kept)


async def test_a_pruned_id_is_refused(db: str) -> None:
    """Reusing a pruned run's id raises RunPruned (an InputError) and creates nothing."""
    async with Engine(db, actions={"noop": Noop()}) as engine:
        first = await engine.run(saga("short", DAY), run_id="order-17")
        await age(engine, first.run_id, 2)
        assert await engine.prune_expired() == 1
        with pytest.raises(RunPruned, match="order-17 belonged to a run pruned on"):
            await engine.run(saga("short", DAY), run_id="order-17")
        with pytest.raises(RunPruned):
            await engine.start(saga("short", DAY), run_id="order-17")
        assert await engine.store.list_runs() == []


async def test_the_active_versions_build_run_survives(db: str) -> None:
    """The run recorded as having built an app's active version is never pruned, not even
    by `prune --older-than 0`; the run of a version no longer active is."""
    async with Engine(db, actions={"noop": Noop()}) as engine:
        built_v1 = (await engine.run(saga("build", None))).run_id
        built_v2 = (await engine.run(saga("build", None))).run_id
        async with engine.store.transaction() as tx:
            await tx.execute(
                "INSERT INTO apps (name, active_version, next_number, created)"
                " VALUES ('shop', 'shop-v2', 3, 'now')"
            )
            for number, run_id in ((1, built_v1), (2, built_v2)):
                await tx.execute(
                    "INSERT INTO versions (id, app, number, artifact_id, image, digest,"
                    " services, run_id, created) VALUES (?, 'shop', ?, 'x', 'img', 'd', '{}',"
                    " ?, 'now')",
                    (f"shop-v{number}", number, run_id),
                )
        assert await engine.prune(0) == 1
        assert [r.run_id for r in await engine.store.list_runs()] == [built_v2]


class TestCli:
    def test_prune_then_reuse_the_id_exits_2(self, cli: Cli) -> None:
        """`sagactl prune` leaves a tombstone: `run --run-id` of that id exits 2, one line."""
        path = cli.saga("chain", {"a": {}})
        assert cli("run", "-q", str(path), "--run-id", "job-1").returncode == 0
        assert cli("prune").stdout == "pruned 0 runs\n"  # no retention set: kept
        done = cli("prune", "--older-than", "0s")
        assert (done.returncode, done.stdout) == (0, "pruned 1 run\n")
        again = cli("run", "-q", str(path), "--run-id", "job-1")
        assert again.returncode == 2
        assert again.stderr.startswith("error: run id job-1 belonged to a run pruned on")
        assert len(again.stderr.splitlines()) == 1
        assert cli.json("list", "--json") == []

    def test_saga_retention_from_yaml(self, cli: Cli) -> None:
        """`retention: 30d` compiles to seconds and is kept with each run; a bad one is
        refused naming its place."""
        path = cli.saga("chain", {"a": {}})
        body = json.loads(path.read_text())
        body["retention"] = "30d"
        path.write_text(json.dumps(body))
        run_id = cli("run", "-q", str(path)).stdout.split()[0]
        conn = sqlite3.connect(cli.db)
        (kept,) = conn.execute("SELECT retention FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        conn.close()
        assert kept == 30 * DAY
        body["retention"] = "soon"
        path.write_text(json.dumps(body))
        done = cli("validate", str(path))
        assert done.returncode == 2 and "retention" in done.stderr

    def test_list_stuck_older_than(self, cli: Cli) -> None:
        """`list --state stuck --older-than 1h` shows runs stuck for over an hour only."""
        path = cli.saga("undo", {"a": {"undo_fail": True}, "b": {"needs": ["a"], "fail": True}})
        ids = [cli("run", "-q", str(path)).stdout.split()[0] for _ in range(2)]
        conn = sqlite3.connect(cli.db)
        with conn:
            conn.execute(
                "UPDATE runs SET updated = ? WHERE run_id = ?", (time.time() - 7200, ids[0])
            )
        conn.close()
        listed = cli.json("list", "--state", "stuck", "--older-than", "1h", "--json")
        assert [r["run_id"] for r in listed] == [ids[0]]
        assert len(cli.json("list", "--state", "stuck", "--json")) == 2
        stats = cli.json("stats", "--json")
        assert (stats["stuck"], stats["stuck_over_1h"], stats["stuck_over_1d"]) == (2, 1, 0)
        assert 7200 <= stats["oldest_stuck_seconds"] < 7300
        bad = cli("list", "--older-than", "soon")
        assert bad.returncode == 2 and "--older-than" in bad.stderr
