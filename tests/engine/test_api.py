"""The Python API: one-call runs, progress to subscribers, logging, status and listing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga, Engine, run_saga
from sagactl.engine.deps import Dependencies
from sagactl.engine.errors import InputError, PluginError, RunNotFound
from sagactl.engine.events import Event, EventKind
from sagactl.engine.providers import MappingProvider
from sagactl.engine.store import open_store

from .sagas import Journal, Step, make_saga


class Reporter(Action):
    """Reports progress many times and logs once."""

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        for i in range(1, 101):
            ctx.progress(i / 100, f"step {i}", bytes=i * 10)
        ctx.log.info("reported")
        return {}


class TestRunSaga:
    def test_sync_run_and_status(self, tmp_path: Path) -> None:
        """run_saga runs to the end from synchronous code and the run is in the store."""
        db = tmp_path / "runs.db"
        result = run_saga(
            make_saga({"a": [], "b": ["a"]}), db=db, actions={"step": Step(Journal())}
        )
        assert result.ok and result.exit_code == 0
        assert result.to_json()["actions"]["b"] == {
            "state": "succeeded",
            "attempts": 1,
            "error": None,
            "outputs": {"value": "b-out"},
        }
        assert result.started is not None and result.finished is not None

    def test_default_store_follows_sagactl_db(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without db=, the store is $SAGACTL_DB."""
        monkeypatch.setenv("SAGACTL_DB", f"sqlite://{tmp_path / 'env.db'}")
        run_saga(make_saga({"a": []}), actions={"step": Step(Journal())}, run_id="x")
        assert (tmp_path / "env.db").exists()

    def test_inputs_are_checked_before_anything_is_stored(self, tmp_path: Path) -> None:
        """A missing, unknown or ill-typed saga input raises InputError and creates no run."""
        saga = make_saga({"a": []}, inputs={"n": {"type": "integer"}})
        db = tmp_path / "runs.db"
        for bad in ({}, {"n": "x"}, {"n": 1, "m": 2}):
            with pytest.raises(InputError):
                run_saga(saga, bad, db=db, actions={"step": Step(Journal())})

        async def runs() -> int:
            async with open_store(db) as store:
                return len(await store.list_runs())

        assert anyio.run(runs) == 0

    @pytest.mark.anyio
    async def test_each_run_pins_the_plugins_of_its_own_saga(self, db: str) -> None:
        """What a run pins is its saga's (worked out once per saga): the version of each
        plugin action it uses, once, whichever saga the engine ran before."""
        provider = MappingProvider(
            {"step": Step(Journal()), "other": Step(Journal())},
            versions={"step": "1.0", "other": "2.0"},
        )
        one = make_saga({"a": [], "b": ["a"]})
        two = CompiledSaga(
            name="two",
            version=1,
            actions={
                "y": ActionSpec("y", "step", {"name": "y"}),
                "x": ActionSpec("x", "other", {"name": "x"}, condition="${{ true }}"),
            },
        )
        assert (one.plugin_uses, one.conditional) == (("step",), False)
        assert (two.plugin_uses, two.conditional) == (("other", "step"), True)
        async with Engine(db, actions=provider) as engine:
            for saga, pinned in [
                (one, {"step": "1.0"}),
                (two, {"other": "2.0", "step": "1.0"}),
                (one, {"step": "1.0"}),
            ]:
                result = await engine.run(saga)
                assert result.ok
                record = await engine.store.get_run(result.run_id)
                assert dict(record.plugin_versions) == pinned

    def test_a_mapping_provider_hands_out_instances_and_calls_factories(self) -> None:
        """An action given as an instance is the one every run gets; one given as a
        factory is made anew for each, with the provider's dependencies."""
        instance, deps = Step(Journal()), Dependencies()
        made: list[Dependencies] = []

        def factory(given: Dependencies) -> Action:
            made.append(given)
            return Step(Journal())

        provider = MappingProvider({"one": instance, "made": factory}, deps=deps)
        assert provider.create("one") is instance and provider.create("one") is instance
        first, second = provider.create("made"), provider.create("made")
        assert isinstance(first, Step) and first is not second
        assert len(made) == 2 and all(given is deps for given in made)
        with pytest.raises(PluginError):
            provider.create("missing")


@pytest.mark.anyio
class TestProgressAndLogs:
    async def test_progress_reaches_subscribers_and_only_the_last_is_kept(self, db: str) -> None:
        """Every progress call is an event; the store keeps the last, without a commit each."""
        events: list[Event] = []
        async with Engine(db, actions={"step": Reporter()}, on_event=events.append) as engine:
            commits_before = engine.store.commits  # type: ignore[attr-defined]
            result = await engine.run(make_saga({"a": []}), run_id="p")
            commits = engine.store.commits - commits_before  # type: ignore[attr-defined]
            status = await engine.status("p")
        progress = [e for e in events if e.kind == EventKind.ACTION_PROGRESS]
        assert len(progress) == 100 and progress[-1].data["fraction"] == 1.0
        assert progress[-1].action == "a" and progress[-1].data["bytes"] == 1000
        assert result.ok and commits <= 2
        assert status.progress == {"a": {"fraction": 1.0, "message": "step 100", "bytes": 1000}}

    async def test_ctx_log_is_bound_to_run_and_action(self, db: str) -> None:
        """ctx.log carries run_id and action."""
        with structlog.testing.capture_logs() as logs:
            async with Engine(db, actions={"step": Reporter()}) as engine:
                await engine.run(make_saga({"a": []}), run_id="logged")
        entry = next(e for e in logs if e["event"] == "reported")
        assert entry["run_id"] == "logged" and entry["action"] == "a"

    async def test_log_and_list(self, db: str) -> None:
        """log() gives the records oldest first; list_runs filters by state."""
        async with Engine(db, actions={"step": Step(Journal())}) as engine:
            await engine.run(make_saga({"a": []}), run_id="one")
            queued = await engine.start(make_saga({"a": []}))
            records = await engine.log("one")
            assert [r.kind for r in records] == [
                EventKind.RUN_CREATED,
                EventKind.RUN_STARTED,
                EventKind.ACTION_STARTED,
                EventKind.ACTION_SUCCEEDED,
                EventKind.RUN_FINISHED,
            ]
            assert [r.run_id for r in await engine.list_runs(states=["queued"])] == [queued]
            with pytest.raises(RunNotFound):
                await engine.log("nope")
