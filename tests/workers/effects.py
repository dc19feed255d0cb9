"""Test actions whose effect is a row in a real table, written in the action's transaction.

`Effect` records (run, action, pid) in `effects` through `ctx.transaction()`, so the row
commits with the action's completion record under the run's fence, or not at all: a count
per (run, action) above one is a duplicate effect. It first appends a `started` line to
`$EFFECT_LOG`, so tests can wait for a worker to be inside an action.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import anyio
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga, RetryPolicy
from sagactl.engine.store import Migration, register_migrations

LOG_ENV = "EFFECT_LOG"

register_migrations(
    "workertest",
    [
        Migration(
            1,
            {
                "postgresql": "CREATE TABLE effects (run_id TEXT NOT NULL, action TEXT NOT NULL,"
                " pid INTEGER NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());",
                "sqlite": "CREATE TABLE effects (run_id TEXT NOT NULL, action TEXT NOT NULL,"
                " pid INTEGER NOT NULL, at TEXT);",
            },
        )
    ],
)


class Effect(Action):
    """Sleeps `sleep` seconds (the window to kill or stop the worker in), then writes its row."""

    input_schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "sleep": {"type": "number"}},
        "required": ["name"],
    }
    output_schema = {"type": "object"}

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        log = os.environ.get(LOG_ENV)
        if log:
            _note(log, f"{ctx.run_id} {inputs['name']} {os.getpid()} started\n")
        await anyio.sleep(float(inputs.get("sleep", 0)))
        async with ctx.transaction() as tx:
            await tx.execute(
                "INSERT INTO effects (run_id, action, pid) VALUES (?, ?, ?)",
                (ctx.run_id, inputs["name"], os.getpid()),
            )
        return {}

    async def compensate(
        self, ctx: ActionContext, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        return None


def _note(path: str, line: str) -> None:
    with open(path, "a") as f:  # one short line: O_APPEND keeps writers' lines whole
        f.write(line)


ACTIONS = {"effect": Effect()}


def chain_saga(*steps: tuple[str, float], name: str = "chain") -> CompiledSaga:
    """A chain of `effect` actions, each (name, seconds to sleep before its effect)."""
    specs: dict[str, ActionSpec] = {}
    previous: str | None = None
    for step, sleep in steps:
        needs = (previous,) if previous else ()
        specs[step] = ActionSpec(
            name=step,
            uses="effect",
            with_={"name": step, "sleep": sleep},
            needs=needs,
            depends_on=frozenset(needs),
            retry=RetryPolicy(attempts=1, backoff=1.0),
        )
        previous = step
    return CompiledSaga(name=name, version=1, actions=specs, inputs={})
