"""page_runs and census: keyset pages of runs, newest first, on every backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sagactl.engine.errors import InputError
from sagactl.engine.events import Event, EventKind
from sagactl.engine.store import NewRun, Store

pytestmark = pytest.mark.anyio


def new_run(run_id: str, saga: str = "demo", app: str = "x") -> NewRun:
    return NewRun(
        run_id=run_id,
        saga=saga,
        definition_hash="h1",
        definition={"format": 1, "name": saga, "actions": {}},
        inputs={"app": app},
    )


async def fill(store: Store) -> list[str]:
    """Seven runs: r0..r4 of demo (r3 finished), two of another saga; creation order."""
    ids = []
    for i in range(5):
        created = await store.create_run(new_run(f"r{i}", app=f"app{i % 2}"))
        ids.append(f"r{i}")
        if i == 3:
            assert created.claim is not None
            await store.append(
                created.claim, [Event("", EventKind.RUN_FINISHED, None, {"state": "succeeded"})]
            )
        elif created.claim is not None:
            await store.release(created.claim)
    for run_id in ("o1", "o2"):
        await store.create_run(new_run(run_id, saga="other"), claim=False)
        ids.append(run_id)
    return ids


class TestPages:
    async def test_pages_walk_every_run_newest_first_once(self, store: Store) -> None:
        """Pages of 3 below each cursor give every run once, newest first."""
        ids = await fill(store)
        seen: list[str] = []
        before = None
        while True:
            page = await store.page_runs(limit=3, before=before)
            seen.extend(r.run_id for r in page)
            if len(page) < 3:
                break
            before = page[-1].cursor
        assert seen == list(reversed(ids))

    async def test_runs_created_while_paging_do_not_shift_pages(self, store: Store) -> None:
        """A run created between two pages shows on neither: the cursor is a key, not an offset."""
        await fill(store)
        first = await store.page_runs(limit=3)
        await store.create_run(new_run("late"), claim=False)
        second = await store.page_runs(limit=3, before=first[-1].cursor)
        assert [r.run_id for r in first] == ["o2", "o1", "r4"]
        assert [r.run_id for r in second] == ["r3", "r2", "r1"]

    async def test_filters(self, store: Store) -> None:
        """state, saga and q (run id prefix, saga, an input's value) filter in SQL."""
        await fill(store)

        async def ids(**kwargs: object) -> list[str]:
            return [r.run_id for r in await store.page_runs(**kwargs)]  # type: ignore[arg-type]

        assert await ids(states=["succeeded"]) == ["r3"]
        assert await ids(saga="other") == ["o2", "o1"]
        assert await ids(q="o1") == ["o1"]  # a whole run id; too short for a prefix
        assert await ids(q="o") == []
        assert await ids(q="other") == ["o2", "o1"]
        assert await ids(q="app1", saga="demo") == ["r3", "r1"]
        assert await ids(q="nothing%") == []
        assert await ids(states=["queued"], saga="demo", limit=2) == ["r4", "r2"]

    async def test_search_by_id_prefix_saga_and_input(self, store: Store) -> None:
        """q: a run id prefix of PREFIX_MIN characters or more, a whole id, a saga, a string
        input; newest first, combined with the other filters and the cursor."""
        for i in range(12):
            run = new_run(f"c0ffee{i:02d}-{i}", saga=f"s{i % 2}", app=f"app{i % 3}")
            await store.create_run(run, claim=False)
        await store.create_run(
            NewRun(
                run_id="numbers",
                saga="s0",
                definition_hash="h1",
                definition={"format": 1, "name": "s0", "actions": {}},
                inputs={"n": 7, "app": "x" * 201, "flag": True},
            ),
            claim=False,
        )

        async def ids(**kwargs: object) -> list[str]:
            return [r.run_id for r in await store.page_runs(**kwargs)]  # type: ignore[arg-type]

        assert await ids(q="c0ffee1") == []  # 7 characters: a prefix needs PREFIX_MIN
        assert await ids(q="c0ffee10") == ["c0ffee10-10"]
        assert await ids(q="c0ffee0") == []
        assert await ids(q="c0ffee01-1") == ["c0ffee01-1"]
        assert await ids(q="app2") == ["c0ffee11-11", "c0ffee08-8", "c0ffee05-5", "c0ffee02-2"]
        assert await ids(q="app2", saga="s1") == ["c0ffee11-11", "c0ffee05-5"]
        page = await store.page_runs(q="app2", limit=2)
        assert [r.run_id for r in page] == ["c0ffee11-11", "c0ffee08-8"]
        assert await ids(q="app2", before=page[-1].cursor) == ["c0ffee05-5", "c0ffee02-2"]
        assert await ids(q="s1", limit=2) == ["c0ffee11-11", "c0ffee09-9"]
        # Only strings up to SEARCH_TERM_MAX characters are words.
        assert await ids(q="7") == []
        assert await ids(q="x" * 201) == []
        assert await ids(q="s0", limit=1) == ["numbers"]
        # Both ways at once: a prefix of ids and a word, each run once.
        await store.create_run(new_run("c0ffee10-x", app="c0ffee10"), claim=False)
        assert await ids(q="c0ffee10") == ["c0ffee10-x", "c0ffee10-10"]

    async def test_summary_fields(self, store: Store) -> None:
        await fill(store)
        (run,) = await store.page_runs(states=["succeeded"])
        assert (run.saga, run.state, run.owner) == ("demo", "succeeded", None)
        assert run.finished is not None and run.created <= run.finished

    async def test_a_bad_cursor_is_bad_input(self, store: Store) -> None:
        for cursor in ("", "abc", "1.5", "nan|x", "x|r1"):
            with pytest.raises(InputError, match="bad page cursor"):
                await store.page_runs(before=cursor)

    async def test_census_counts_by_saga_and_state(self, store: Store) -> None:
        await fill(store)
        census = {(saga, state): count for saga, state, count, _ in await store.census()}
        assert census == {
            ("demo", "queued"): 4,
            ("demo", "succeeded"): 1,
            ("other", "queued"): 2,
        }


async def test_a_page_below_a_cursor_seeks_to_it_on_sqlite(tmp_path: Path) -> None:
    """With the cursor as bound values (as the store sends it), SQLite seeks the index to
    the cursor instead of walking it down from the newest run (issue 11's deep pages)."""
    from sagactl.engine.store import open_store
    from sagactl.engine.store.pages import page_sql

    path = tmp_path / "plans.db"
    async with open_store(f"sqlite://{path}"):
        pass
    for states in (None, ["succeeded"]):
        sql, params = page_sql(
            "sqlite", states=states, saga=None, q=None, before="12.5|r1", limit=51
        )
        with sqlite3.connect(path) as conn:
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
        assert [line for line in plan if line.startswith("SCAN")] == [], plan
        assert any("created<?" in line for line in plan), plan


async def test_sqlite_writes_each_new_run_its_words_once(tmp_path: Path) -> None:
    """The search trigger (v14, without v8's UNION) writes the words v8's did: the saga,
    the id and each string input of SEARCH_TERM_MAX characters at most, each word once
    however often it recurs."""
    from sagactl.engine.store import open_store
    from sagactl.engine.store.schema import SEARCH_TERM_MAX

    path = tmp_path / "terms.db"
    inputs = {"a": "dup", "b": "dup", "c": "demo", "d": "t1", "n": 7, "on": True, "nested": ["z"]}
    inputs |= {"long": "x" * (SEARCH_TERM_MAX + 1), "edge": "y" * SEARCH_TERM_MAX}
    async with open_store(f"sqlite://{path}") as store:
        await store.create_run(NewRun("t1", "demo", "h1", {"format": 1}, inputs), claim=False)
        await store.create_run(NewRun("t2", "t2", "h1", {"format": 1}, {}), claim=False)
        assert [r.run_id for r in await store.page_runs(q="dup")] == ["t1"]
    with sqlite3.connect(path) as conn:
        rows = sorted(conn.execute("SELECT run_id, term FROM run_terms"))
        (trigger,) = conn.execute(
            "SELECT sql FROM sqlite_schema WHERE name = 'runs_terms'"
        ).fetchone()
    assert "UNION ALL" in trigger and "UNION SELECT" not in trigger
    assert rows == sorted(
        [("t1", "demo"), ("t1", "t1"), ("t1", "dup"), ("t1", "y" * SEARCH_TERM_MAX), ("t2", "t2")]
    )
