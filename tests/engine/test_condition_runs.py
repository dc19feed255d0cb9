"""Conditions at run time: what is skipped and why, what still runs, what is compensated,
and a crash at every log write keeping each decision."""

from __future__ import annotations

import contextlib
import os
import secrets
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine import Action, ActionContext, ActionInfo, CompiledSaga, Engine
from sagactl.engine.compiler import compile_definition
from sagactl.engine.errors import FatalError
from sagactl.engine.events import EventKind
from sagactl.engine.states import ActionState, RunState
from sagactl.engine.testing import rehearse_crashes
from sagactl.engine.yaml_loader import load_yaml_text

A, K = ActionState, EventKind
PG_SERVER = os.environ.get("SAGACTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


class Emit(Action):
    """Outputs the `emit` value it is given (untyped: its type is only known when it runs);
    journals what it executes and compensates; `fail: true` fails for good."""

    input_schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "emit": {}, "fail": {"type": "boolean"}},
        "required": ["name"],
    }
    output_schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "emit": {}},
    }

    def __init__(self) -> None:
        self.journal: list[str] = []

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.journal.append(f"execute {inputs['name']}")
        if inputs.get("fail"):
            raise FatalError(f"{inputs['name']} failed on purpose")
        return {"name": inputs["name"], "emit": inputs.get("emit")}

    async def compensate(
        self, ctx: ActionContext, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        self.journal.append(f"compensate {inputs['name']}")


class Catalog:
    def info(self, name: str) -> ActionInfo | None:
        if name != "emit":
            return None
        return ActionInfo("emit", Emit.input_schema, Emit.output_schema, compensable=True)

    def names(self) -> list[str]:
        return ["emit"]


HEADER = "apiVersion: sagactl/v1\nkind: Saga\nmetadata: {name: cond}\n"


def saga_of(body: str) -> CompiledSaga:
    document = load_yaml_text(HEADER + textwrap.dedent(body), file="cond.yaml")
    return compile_definition(document, catalog=Catalog())


BRANCHES = saga_of(
    """\
    inputs: {env: {type: string}, last_fails: {type: boolean, default: false}}
    actions:
      first: {uses: emit, with: {name: first, emit: 5}}
      gated:
        uses: emit
        if: ${{ inputs.env == "prod" && actions.first.outputs.emit > 3 }}
        with: {name: gated, emit: x}
      user: {uses: emit, with: {name: user, emit: "${{ actions.gated.outputs.emit }}"}}
      user_of_user:
        uses: emit
        if: ${{ actions.user.outputs.name != "" }}
        with: {name: user_of_user}
      needs_only: {uses: emit, needs: [gated], with: {name: needs_only, emit: 1}}
      last:
        uses: emit
        needs: [needs_only, user_of_user]
        with: {name: last, fail: "${{ inputs.last_fails }}"}
    """
)
SKIPPED = ["gated", "user", "user_of_user"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: an SQLite file, or a fresh schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'runs.db'}"
        return
    with _pg_schema() as url:
        yield url


@contextlib.contextmanager
def _pg_schema() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    base = PG_SERVER.rsplit("/", 1)[0]
    try:
        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'lang_x'").fetchone():
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute("CREATE DATABASE lang_x")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {base}: {exc}")
    url, schema = f"{base}/lang_x", f"cond_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def run(saga: CompiledSaga, db: str, **inputs: Any) -> tuple[Any, Emit, list[Any]]:
    emit = Emit()
    async with Engine(db, actions={"emit": emit}) as engine:
        result = await engine.run(saga, inputs, run_id="r")
        log = await engine.log("r")
    return result, emit, log


@pytest.mark.anyio
class TestSkips:
    async def test_false_condition_skips_it_and_the_users_of_its_outputs(self, db: str) -> None:
        """`gated` is skipped by its condition, `user` (uses its outputs) and `user_of_user`
        (uses user's, in its `if`) after it; `needs_only` and `last` run; the run succeeds."""
        result, emit, log = await run(BRANCHES, db, env="dev")
        assert result.state is RunState.SUCCEEDED and result.exit_code == 0
        states = {name: s.state for name, s in result.actions.items()}
        assert states == {
            "first": A.SUCCEEDED,
            "gated": A.SKIPPED,
            "user": A.SKIPPED,
            "user_of_user": A.SKIPPED,
            "needs_only": A.SUCCEEDED,
            "last": A.SUCCEEDED,
        }
        assert emit.journal == ["execute first", "execute needs_only", "execute last"]
        reasons = {name: result.actions[name].reason for name in SKIPPED}
        assert reasons == {
            "gated": 'condition is false: ${{ inputs.env == "prod" && '
            "actions.first.outputs.emit > 3 }}",
            "user": "it uses outputs of 'gated', skipped",
            "user_of_user": "it uses outputs of 'user', skipped",
        }
        # Each skip is logged once, with its reason, and no skipped action ever started.
        skips = [(r.action, r.data["reason"]) for r in log if r.kind is K.ACTION_SKIPPED]
        assert skips == [(name, reasons[name]) for name in SKIPPED]
        started = {r.action for r in log if r.kind is K.ACTION_STARTED}
        assert started == {"first", "needs_only", "last"}
        assert result.to_json()["actions"]["gated"]["reason"] == reasons["gated"]
        assert "reason" not in result.to_json()["actions"]["first"]

    async def test_true_condition_runs_everything(self, db: str) -> None:
        result, emit, _ = await run(BRANCHES, db, env="prod")
        assert result.state is RunState.SUCCEEDED
        assert {s.state for s in result.actions.values()} == {A.SUCCEEDED}
        assert sorted(emit.journal) == sorted(f"execute {name}" for name in BRANCHES.actions)
        assert result.actions["user"].outputs == {"name": "user", "emit": "x"}

    async def test_skipped_actions_are_never_compensated(self, db: str) -> None:
        """`last` fails: exactly the completed actions are compensated, dependents first;
        the skipped ones stay skipped."""
        result, emit, log = await run(BRANCHES, db, env="dev", last_fails=True)
        assert result.state is RunState.COMPENSATED
        assert emit.journal[-2:] == ["compensate needs_only", "compensate first"]
        assert [line for line in emit.journal if line.startswith("compensate")] == [
            "compensate needs_only",
            "compensate first",
        ]
        assert [name for name in SKIPPED if result.actions[name].state is A.SKIPPED] == SKIPPED
        compensated = {r.action for r in log if r.kind is K.COMPENSATION_STARTED}
        assert compensated == {"first", "needs_only"}

    async def test_a_run_whose_every_root_is_skipped(self, db: str) -> None:
        """Nothing to start at all: the run still succeeds, and its log says started, not
        resumed."""
        saga = saga_of(
            """\
            actions:
              only: {uses: emit, if: "${{ saga.name == 'another' }}", with: {name: only}}
              after: {uses: emit, needs: [only], with: {name: after}}
            """
        )
        result, emit, log = await run(saga, db)
        assert result.state is RunState.SUCCEEDED
        assert emit.journal == ["execute after"]
        assert result.actions["only"].reason == "condition is false: ${{ saga.name == 'another' }}"
        assert K.RUN_RESUMED not in {r.kind for r in log}

    async def test_a_condition_that_cannot_be_evaluated_fails_as_bad_input(self, db: str) -> None:
        """An untyped output compared with a string at run time: the action fails (never
        retried), the run compensates what completed and exits 2."""
        saga = saga_of(
            """\
            actions:
              first: {uses: emit, with: {name: first, emit: 5}}
              odd:
                uses: emit
                if: ${{ actions.first.outputs.emit > "4" }}
                with: {name: odd}
                retry: {attempts: 3}
            """
        )
        result, emit, log = await run(saga, db)
        assert result.state is RunState.COMPENSATED and result.exit_code == 2
        odd = result.actions["odd"]
        assert odd.state is A.FAILED and odd.attempts == 1
        assert odd.error == (
            'condition ${{ actions.first.outputs.emit > "4" }}: '
            "actions.first.outputs.emit > \"4\": '>' orders two numbers or two strings, "
            "not a number and a string"
        )
        assert emit.journal == ["execute first", "compensate first"]
        assert [r.kind for r in log if r.action == "odd"] == [K.ACTION_STARTED, K.ACTION_FAILED]


class TestCrashes:
    @pytest.mark.parametrize(
        "inputs",
        [{"env": "dev"}, {"env": "prod"}, {"env": "dev", "last_fails": True}],
        ids=["skipping", "running", "compensating"],
    )
    def test_a_crash_at_every_write_keeps_each_decision(self, inputs: dict[str, Any]) -> None:
        """A crash at every log write, then a resume, ends as a clean run does: the same
        skips, nothing completed run twice, the same compensations."""
        import anyio

        emit = Emit()
        rehearsal = anyio.run(
            lambda: rehearse_crashes(BRANCHES, {"emit": emit}, inputs)  # type: ignore[arg-type]
        )
        skipped = {n for n, (state, _) in rehearsal.expected.actions.items() if state is A.SKIPPED}
        assert skipped == (set() if inputs["env"] == "prod" else set(SKIPPED))
        assert rehearsal.writes >= 4  # every position was rehearsed: none broke the law
