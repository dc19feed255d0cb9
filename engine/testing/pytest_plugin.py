"""pytest fixtures for the testing kit, loaded by the `pytest11` entry point `sagactl`.

    async def test_notify(sagactl_kit: Kit) -> None:   # with @pytest.mark.anyio
        assert (await sagactl_kit.run_action(Notify(client), {"url": URL})).ok
        await sagactl_kit.check_compensation(CreateThing(), {"name": "x"}, thing_exists)
        await sagactl_kit.rehearse_crashes(saga, {"acme.notify": Notify(client)})

Without the entry point (another distribution's tests), list the module in a conftest:
`pytest_plugins = ["sagactl.engine.testing.pytest_plugin"]`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..action import JSON, Action
from ..deps import Dependencies
from ..model import CompiledSaga
from .compensation import CompensationCheck, check_compensation
from .harness import ActionRun, run_action, sqlite_url
from .probes import Probe
from .rehearsal import Rehearsal, rehearse_crashes


@dataclass(frozen=True)
class Kit:
    """The kit bound to one test's database and dependencies."""

    db: str
    """A fresh SQLite database URL in the test's `tmp_path`, kept for inspection."""
    deps: Dependencies

    async def run_action(
        self,
        action: Action,
        inputs: Mapping[str, JSON] | None = None,
        *,
        attempts: int = 1,
        action_timeout: float | None = None,
    ) -> ActionRun:
        """`run_action` on this test's database."""
        return await run_action(
            action,
            inputs,
            db=self.db,
            deps=self.deps,
            attempts=attempts,
            action_timeout=action_timeout,
        )

    async def check_compensation(
        self,
        action: Action,
        inputs: Mapping[str, JSON] | None,
        probe: Probe,
        *,
        expect_effect: bool = True,
    ) -> CompensationCheck:
        """`check_compensation` on this test's database."""
        return await check_compensation(
            action, inputs, probe, db=self.db, deps=self.deps, expect_effect=expect_effect
        )

    async def rehearse_crashes(
        self,
        saga: CompiledSaga,
        actions: Mapping[str, Action],
        inputs: Mapping[str, JSON] | None = None,
        *,
        probe: Probe | None = None,
        reset: Callable[[], Awaitable[None]] | None = None,
        volatile: Collection[str] = (),
    ) -> Rehearsal:
        """`rehearse_crashes` (on databases of its own) with this test's dependencies."""
        return await rehearse_crashes(
            saga, actions, inputs, probe=probe, reset=reset, deps=self.deps, volatile=volatile
        )


@pytest.fixture
def sagactl_db(tmp_path: Path) -> str:
    """A fresh SQLite run database URL in the test's `tmp_path`."""
    return sqlite_url(tmp_path, "sagactl-runs.db")


@pytest.fixture
def sagactl_deps() -> Dependencies:
    """The dependency container the kit's runs use; override it to provide your own."""
    return Dependencies()


@pytest.fixture
def sagactl_kit(sagactl_db: str, sagactl_deps: Dependencies) -> Kit:
    """The testing kit on `sagactl_db` with `sagactl_deps`."""
    return Kit(db=sagactl_db, deps=sagactl_deps)
