"""The parent link of child saga runs, on every backend: kept, filtered by, and never
claimed on its own; and a whole parent run with its child on each store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga
from sagactl.engine.api import Engine
from sagactl.engine.store import NewRun, Store
from sagactl.engine.store.base import ParentLink
from sagactl.engine.store.postgres import PostgresStore

pytestmark = pytest.mark.anyio


def new_run(run_id: str, parent: ParentLink | None = None) -> NewRun:
    return NewRun(
        run_id=run_id,
        saga="demo",
        definition_hash="h",
        definition={"format": 1, "name": "demo", "actions": {}},
        inputs={},
        parent=parent,
    )


async def test_parent_link_is_kept_and_filtered(store: Store) -> None:
    await store.create_run(new_run("p"), claim=False)
    await store.create_run(new_run("p/a", ParentLink("p", "a")), claim=False)
    await store.create_run(new_run("p/b", ParentLink("p", "b")), claim=False)
    await store.create_run(new_run("q/a", ParentLink("q", "a")), claim=False)
    assert (await store.get_run("p/a")).parent == ParentLink("p", "a")
    assert (await store.get_run("p")).parent is None
    assert [r.run_id for r in await store.list_runs(parent="p")] == ["p/a", "p/b"]
    assert [r.run_id for r in await store.list_runs(parent="p", states=["running"])] == []
    assert [r.run_id for r in await store.list_runs(parent="nobody")] == []
    assert [s.run_id for s in await store.page_runs(parent="p")] == ["p/b", "p/a"]
    assert len(await store.list_runs()) == 4
    # Only parents drive their children: `resume --all` and workers never take one.
    assert await store.orphans(["queued"]) == ["p"]
    if isinstance(store, PostgresStore):
        assert [c.run_id for c in await store.claim_next(10)] == ["p"]


class Echo(Action):
    input_schema = {"type": "object", "properties": {"text": {"type": "string"}}}
    output_schema = {"type": "object", "properties": {"text": {"type": "string"}}}

    def __init__(self) -> None:
        self.undone: list[str] = []

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if inputs["text"] == "fail":
            raise RuntimeError("told to fail")
        return {"text": inputs["text"]}

    async def compensate(
        self, ctx: ActionContext, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        self.undone.append(ctx.idempotency_key)


def sagas(after: str) -> CompiledSaga:
    child = CompiledSaga(
        name="child",
        version=1,
        inputs={"text": {"type": "string"}},
        actions={"say": ActionSpec(name="say", uses="echo", with_={"text": "${{ inputs.text }}"})},
        outputs={"said": "${{ actions.say.outputs.text }}"},
    )
    return CompiledSaga(
        name="parent",
        version=1,
        actions={
            "sub": ActionSpec(name="sub", uses="saga/child", with_={"text": "hi"}, child=child),
            "after": ActionSpec(
                name="after", uses="echo", with_={"text": after}, depends_on=frozenset({"sub"})
            ),
        },
        outputs={"said": "${{ actions.sub.outputs.said }}"},
    )


async def test_child_run_on_each_store(store_url: str) -> None:
    echo = Echo()
    async with Engine(store_url, actions={"echo": echo}) as engine:
        ok = await engine.run(sagas("done"), run_id="ok")
        failed = await engine.run(sagas("fail"), run_id="bad")
        status = await engine.status("ok")
        children = await engine.list_runs(parent="bad")
    assert ok.ok and ok.outputs == {"said": "hi"}
    assert status.children["sub"].to_json()["parent"] == {"run_id": "ok", "action": "sub"}
    assert status.to_json()["actions"]["sub"]["child"]["outputs"] == {"said": "hi"}
    assert str(failed.state) == "compensated"
    assert [(c.run_id, str(c.state)) for c in children] == [("bad/sub", "compensated")]
    assert echo.undone == ["bad/sub/say"]
