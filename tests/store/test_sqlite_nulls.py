"""SQLite: parameters that are None are written as NULL in the statement, not bound (sqlite3
binds a None only after a failed adapter look-up); PostgreSQL's statements are unchanged."""

from __future__ import annotations

import sqlite3

import pytest
from sagactl.engine.events import Event, EventKind
from sagactl.engine.store import Claim, NewRun
from sagactl.engine.store.sql import Appending, creation, numbered, statements, with_nulls

CLAIM = Claim("r1", "me", 1)


def test_only_whole_named_parameters_become_null() -> None:
    sql = "UPDATE t SET n = :n, now = :now, c = CAST(:n AS TEXT), d = x::n WHERE k = ':n'"
    assert with_nulls(sql, ("n",)) == (
        "UPDATE t SET n = NULL, now = :now, c = CAST(NULL AS TEXT), d = x::n WHERE k = ':n'"
    )


def test_a_moving_append_binds_no_none() -> None:
    running = Event("", EventKind.RUN_STARTED, None, {"state": "running", "segment": 1})
    appending = Appending(CLAIM, [running], None, 1.0)
    sql = appending.sql(statements("sqlite"))
    assert "error = NULL" in sql and "finished = NULL" in sql and ":started" in sql
    bound = [name for name, value in appending.params.items() if f":{name}" in sql]
    assert all(appending.params[name] is not None for name in bound)
    assert "NULL, error_code" not in appending.sql(statements("postgresql"))
    assert "%(error)s" in appending.sql(statements("postgresql"))


def test_a_finishing_append_leaves_started_alone() -> None:
    """`coalesce(started, NULL)` would keep `started` but rewrite its index's page."""
    done = Event("", EventKind.RUN_FINISHED, None, {"state": "succeeded", "outputs": {}})
    sql = Appending(CLAIM, [done], None, 1.0).sql(statements("sqlite"))
    assert "started" not in sql and "finished = :finished" in sql


def test_a_new_run_binds_no_none() -> None:
    run = NewRun("r1", "demo", "h", {"format": 1, "name": "demo", "actions": {}}, {})
    new = creation(run, "me", 1.0)
    sql = with_nulls(statements("sqlite").insert_run, new.nulls)
    assert "parent_run_id" in new.nulls and "CAST(NULL AS TEXT)" in sql
    assert not [name for name in new.nulls if f":{name}" in sql]


def test_named_parameters_are_numbered_in_order() -> None:
    """sqlite3 binds a named parameter by its name, looked up in the mapping; a numbered
    one by its place: the same statement, its values picked out in the numbers' order."""
    sql, values = numbered("SELECT :b, ':a', :a, CAST(:b AS TEXT), x::a")
    assert sql == "SELECT ?1, ':a', ?2, CAST(?1 AS TEXT), x::a"
    assert values({"a": 1, "b": 2, "c": 3}) == (2, 1)
    assert numbered("SELECT :only")[1]({"only": None}) == (None,)
    assert numbered("SELECT 1")[1]({}) == ()


def test_numbered_statements_bind_as_the_named_ones() -> None:
    append = Appending(
        CLAIM, [Event("", EventKind.RUN_STARTED, None, {"state": "running"})], None, 1.0
    )
    append.params["seq"] = 0
    named = with_nulls(statements("sqlite").append(True, False), append.nulls)
    sql, values = numbered(named)

    def row_after(statement: str, params: object) -> tuple[object, ...]:
        conn = sqlite3.connect(":memory:")
        conn.execute(
            "CREATE TABLE runs (run_id, owner, fence, last_seq, updated, state, error,"
            " error_code, started, finished, wake_at)"
        )
        conn.execute(
            "INSERT INTO runs VALUES ('r1', 'me', 1, 0, 0, 'queued', 'x', 'y', NULL, 2, 3)"
        )
        assert conn.execute(statement, params).rowcount == 1
        row: tuple[object, ...] = conn.execute("SELECT * FROM runs").fetchone()
        return row

    assert row_after(sql, values(append.params)) == row_after(named, append.params)
    assert row_after(sql, values(append.params))[3:6] == (1, 1.0, "running")
    with pytest.raises(ValueError):
        numbered("SELECT ?, :a")
