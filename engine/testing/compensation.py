"""The compensation check: an action's `compensate` undoes what its `execute` did.

The action runs in a two-action saga: the action, then a witness that waits for it,
snapshots the effect with the author's probe, and fails on purpose (a `FatalError`), so
the engine compensates the action as it would after a real failure further on. The
probe's snapshots before the run, at the witness, and after compensation must show an
effect that was there and is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..action import JSON, Action, ActionContext, Inputs, Outputs
from ..api import Engine, RunResult
from ..deps import Dependencies
from ..errors import FatalError
from ..states import ActionState, RunState
from .harness import SUBJECT, action_spec, saga_of, temporary_db
from .probes import Probe, probe_store

WITNESS = "testing.witness"


class CompensationNotUndone(AssertionError):
    """The action's compensation did not undo its effect (or could not be checked)."""


@dataclass(frozen=True)
class CompensationCheck:
    """The probe's snapshots and the run, for a check that passed."""

    before: JSON
    during: JSON
    """After `execute`, before compensation."""
    after: JSON
    result: RunResult


class _Witness(Action):
    """Snapshots the effect, then fails so that the engine compensates the action."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.seen: list[JSON] = []

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        async with ctx.transaction() as tx:  # read only: rolled back with the failure
            self.seen.append(await self.probe(tx))
        raise FatalError("the testing kit's witness fails on purpose")


async def check_compensation(
    action: Action,
    inputs: Mapping[str, JSON] | None,
    probe: Probe,
    *,
    db: str | None = None,
    deps: Dependencies | None = None,
    expect_effect: bool = True,
) -> CompensationCheck:
    """Assert that compensating `action` (run with `inputs`) undoes its effect as `probe`
    sees it; raises `CompensationNotUndone` otherwise. With `expect_effect` (the default)
    an `execute` that leaves nothing the probe can see fails too: such a check would prove
    nothing. `db` keeps the run in that database; without it a temporary one is used."""
    if not type(action).compensable():
        raise CompensationNotUndone(f"{type(action).__name__} has no compensate(): irreversible")
    if db is None:
        with temporary_db() as url:
            return await _check(action, inputs, probe, url, deps, expect_effect)
    return await _check(action, inputs, probe, db, deps, expect_effect)


async def _check(
    action: Action,
    inputs: Mapping[str, JSON] | None,
    probe: Probe,
    db: str,
    deps: Dependencies | None,
    expect_effect: bool,
) -> CompensationCheck:
    witness = _Witness(probe)
    saga = saga_of(
        action_spec("action", inputs),
        action_spec("witness", uses=WITNESS, needs=("action",)),
    )
    actions = {SUBJECT: action, WITNESS: witness}
    async with Engine(db, actions=actions, deps=deps) as engine:
        before = await probe_store(engine.store, probe)
        result = await engine.run(saga, run_id="testing-compensation")
        after = await probe_store(engine.store, probe)
    status = result.actions["action"]
    if status.state is not ActionState.COMPENSATED or result.state is not RunState.COMPENSATED:
        raise CompensationNotUndone(
            f"the action ended {status.state} (run {result.state}), not compensated: "
            f"{status.error or result.error}"
        )
    during = witness.seen[0]
    if expect_effect and during == before:
        raise CompensationNotUndone(
            f"execute left no effect the probe can see (before and after: {before!r}); "
            "probe the effect itself, or pass expect_effect=False"
        )
    if after != before:
        raise CompensationNotUndone(
            f"compensation did not undo the effect: before {before!r}, after execute "
            f"{during!r}, after compensation {after!r}"
        )
    return CompensationCheck(before=before, during=during, after=after, result=result)
