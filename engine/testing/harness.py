"""Run one action under the engine's real context, on a temporary SQLite store.

The action runs as the only action of a one-action saga, driven by a real `Engine`: its
inputs and outputs are checked against its schemas, `ctx.transaction()` commits with the
completion record, checkpoints and progress land in the log, exactly as in production.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..action import JSON, Action
from ..api import Engine, RunResult
from ..deps import Dependencies
from ..events import Event
from ..model import ActionSpec, CompiledSaga, RetryPolicy
from ..states import ActionState, ActionStatus

SUBJECT = "testing.subject"
"""The `uses:` name the kit gives the action under test."""


@contextmanager
def temporary_db() -> Iterator[str]:
    """A fresh SQLite database URL in a temporary folder, deleted when the block ends."""
    with tempfile.TemporaryDirectory(prefix="sagactl-test-") as folder:
        yield sqlite_url(Path(folder))


def sqlite_url(folder: Path, name: str = "runs.db") -> str:
    """The URL of the SQLite database file `name` in `folder`."""
    return f"sqlite://{folder / name}"


def action_spec(
    name: str,
    inputs: Mapping[str, JSON] | None = None,
    *,
    uses: str = SUBJECT,
    needs: tuple[str, ...] = (),
    attempts: int = 1,
    timeout: float | None = None,
) -> ActionSpec:
    """One action as a definition would declare it, with literal `with:` inputs."""
    return ActionSpec(
        name=name,
        uses=uses,
        with_=dict(inputs or {}),
        needs=needs,
        depends_on=frozenset(needs),
        timeout=timeout,
        retry=RetryPolicy(attempts=attempts, backoff=0.0),
    )


def saga_of(*specs: ActionSpec, name: str = "testing") -> CompiledSaga:
    """A compiled saga made of `specs`, as the compiler would build it from YAML."""
    return CompiledSaga(name=name, version=1, actions={s.name: s for s in specs}, inputs={})


@dataclass(frozen=True)
class ActionRun:
    """What became of one action run by `run_action`."""

    name: str
    result: RunResult
    """The run, as `Engine.run` returned it."""
    events: list[Event]
    """Every event the run emitted, in order (progress included)."""

    @property
    def status(self) -> ActionStatus:
        return self.result.actions[self.name]

    @property
    def state(self) -> ActionState:
        return self.status.state

    @property
    def ok(self) -> bool:
        return self.state is ActionState.SUCCEEDED

    @property
    def outputs(self) -> dict[str, Any]:
        """The action's outputs; `AssertionError` naming its error when it did not succeed."""
        if not self.ok or self.status.outputs is None:
            raise AssertionError(f"{self.name} did not succeed: {self.state}: {self.status.error}")
        return self.status.outputs

    @property
    def error(self) -> str | None:
        return self.status.error


async def run_action(
    action: Action,
    inputs: Mapping[str, JSON] | None = None,
    *,
    db: str | None = None,
    deps: Dependencies | None = None,
    name: str = "action",
    attempts: int = 1,
    action_timeout: float | None = None,
    run_id: str = "testing-run",
) -> ActionRun:
    """Run `action` once with `inputs` under a real `ActionContext` and return what became
    of it. With `db` (a URL) the run is kept there to inspect; without, a temporary SQLite
    file is used and deleted. `attempts` > 1 retries a failure (without backoff);
    `action_timeout` is the action's `timeout:` in seconds."""
    saga = saga_of(action_spec(name, inputs, attempts=attempts, timeout=action_timeout))
    if db is None:
        with temporary_db() as url:
            return await _run(saga, name, action, url, deps, run_id)
    return await _run(saga, name, action, db, deps, run_id)


async def _run(
    saga: CompiledSaga,
    name: str,
    action: Action,
    db: str,
    deps: Dependencies | None,
    run_id: str,
) -> ActionRun:
    events: list[Event] = []
    async with Engine(db, actions={SUBJECT: action}, deps=deps, on_event=events.append) as engine:
        result = await engine.run(saga, run_id=run_id)
    return ActionRun(name=name, result=result, events=events)
