"""SQLite: `create_run` gives the new run's record without reading its row back; it is the
row as stored, whatever the records written with it did to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sagactl.engine.events import Event, EventKind
from sagactl.engine.store import NewRun
from sagactl.engine.store.records import ParentLink
from sagactl.engine.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def run_level(kind: EventKind, **data: object) -> Event:
    return Event("", kind, None, data)


STARTED = run_level(EventKind.RUN_STARTED, state="running", segment=1)
CASES = {
    "unclaimed": (False, []),
    "claimed": (True, []),
    "started": (True, [STARTED, Event("", EventKind.ACTION_STARTED, "a", {"attempt": 1})]),
    "finished": (True, [STARTED, run_level(EventKind.RUN_FINISHED, state="succeeded")]),
    "stuck": (True, [run_level(EventKind.RUN_STUCK, state="stuck", error="no", code="x")]),
}


@pytest.mark.parametrize("case", CASES)
async def test_the_record_is_the_row_as_stored(tmp_path: Path, case: str) -> None:
    claim, records = CASES[case]
    run = NewRun(
        "r1",
        "demo",
        "h",
        {"format": 1, "name": "demo", "actions": {}},
        {"b": [1, 2], "a": {"y": 1, "x": None}},
        plugin_versions={"z.b": "2", "a.z": None},
        node="n1",
        retention=60.0,
        parent=ParentLink("p1", "child"),
        concurrency_key="k",
        concurrency_limit=2,
    )
    async with SqliteStore(f"sqlite://{tmp_path / 'log.db'}") as store:
        await store.create_run(NewRun("p1", "demo", "h", {"format": 1}, {}), claim=False)
        created = await store.create_run(run, claim=claim, records=records)
        stored = await store.get_run("r1")
        assert created.run == stored
        assert list(created.run.inputs) == list(stored.inputs)  # keys in the stored order
        assert list(created.run.plugin_versions) == list(stored.plugin_versions)
