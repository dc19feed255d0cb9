"""The version actions through the testing kit: real context, real store, the build's own
migrations; compensation undoes, and a crash anywhere resumes to the same records."""

from __future__ import annotations

import pytest
from sagactl.actions.build_from_tar.steps.versions import (
    CreateVersion,
    GetNextVersion,
    SetActiveVersion,
)
from sagactl.engine import JSON, Action, Transaction
from sagactl.engine.testing import action_spec, saga_of
from sagactl.engine.testing.pytest_plugin import Kit

pytestmark = pytest.mark.anyio

DIGEST = "sha256:" + "ab" * 32
VERSION_INPUTS: dict[str, JSON] = {
    "app": "shop",
    "version": "shop-v1",
    "number": 1,
    "artifact_id": "0" * 32,
    "image": "oci:/images/shop:v1",
    "digest": DIGEST,
    "services": {},
    "source_dir": "/uploads/shop",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def versions(tx: Transaction) -> JSON:
    """The probe: every version row and every app's active version and next number."""
    rows = await tx.fetchall("SELECT id, app, number, digest FROM versions ORDER BY id")
    apps = await tx.fetchall("SELECT name, active_version, next_number FROM apps ORDER BY name")
    return {"versions": [list(r) for r in rows], "apps": [list(a) for a in apps]}


async def test_create_version_records_the_version(sagactl_kit: Kit) -> None:
    run = await sagactl_kit.run_action(CreateVersion(), VERSION_INPUTS)
    assert run.outputs == {"version_id": "shop-v1"}


async def test_create_version_refuses_a_bad_digest(sagactl_kit: Kit) -> None:
    run = await sagactl_kit.run_action(CreateVersion(), VERSION_INPUTS | {"digest": "md5:1"})
    assert not run.ok and run.error is not None and "digest" in run.error


async def test_create_version_compensation_deletes_the_version(sagactl_kit: Kit) -> None:
    async def version_rows(tx: Transaction) -> JSON:
        return [list(r) for r in await tx.fetchall("SELECT id, app FROM versions")]

    check = await sagactl_kit.check_compensation(CreateVersion(), VERSION_INPUTS, version_rows)
    assert check.during == [["shop-v1", "shop"]] and check.after == []


async def test_version_actions_survive_a_crash_at_every_write(sagactl_kit: Kit) -> None:
    """Allocate, record and activate a version; any crash resumes to the same records (one
    number taken, one version, active)."""
    ref = "${{ actions.next.outputs.%s }}"
    saga = saga_of(
        action_spec("next", {"app": "shop"}, uses="build.get_next_version"),
        action_spec(
            "create",
            VERSION_INPUTS
            | {"version": ref % "version", "number": ref % "number"}
            | {"artifact_id": ref % "artifact_id"},
            uses="build.create_version",
            needs=("next",),
        ),
        action_spec(
            "activate",
            {"app": "shop", "version": ref % "version"},
            uses="build.set_active_version",
            needs=("create",),
        ),
    )
    actions: dict[str, Action] = {
        "build.get_next_version": GetNextVersion(),
        "build.create_version": CreateVersion(),
        "build.set_active_version": SetActiveVersion(),
    }
    rehearsal = await sagactl_kit.rehearse_crashes(
        saga, actions, probe=versions, volatile={"next.artifact_id"}
    )
    assert rehearsal.expected.effect == {
        "versions": [["shop-v1", "shop", 1, DIGEST]],
        "apps": [["shop", "shop-v1", 2]],
    }
