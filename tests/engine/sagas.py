"""Test sagas and actions: a DAG from a dict, actions that journal what they do.

`Journal` keeps the order of executions and compensations across runs, processes aside;
`Step` actions look up their behaviour (fail, block, sleep) in a shared `Script`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga, RetryPolicy
from sagactl.engine.errors import FatalError, InputError


def make_saga(
    deps: Mapping[str, Iterable[str]],
    *,
    name: str = "demo",
    pivots: Iterable[str] = (),
    irreversible: Iterable[str] = (),
    attempts: int = 1,
    timeout: float | None = None,
    retry: Mapping[str, RetryPolicy] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> CompiledSaga:
    """Each action `uses` "step" and passes its own name; `deps` maps action -> needs."""
    pivot_set, irreversible_set = set(pivots), set(irreversible)
    actions = {
        action: ActionSpec(
            name=action,
            uses="step",
            with_={"name": action},
            needs=tuple(sorted(needs)),
            depends_on=frozenset(needs),
            timeout=timeout,
            retry=(retry or {}).get(action, RetryPolicy(attempts=attempts, backoff=1.0)),
            pivot=action in pivot_set,
            compensable=action not in irreversible_set,
        )
        for action, needs in deps.items()
    }
    return CompiledSaga(name=name, version=1, actions=actions, inputs=inputs or {})


@dataclass
class Script:
    """How each action behaves, by name."""

    fatal: set[str] = field(default_factory=set)
    bad_input: set[str] = field(default_factory=set)
    flaky: dict[str, int] = field(default_factory=dict)
    """Action -> how many attempts fail (retryably) before one succeeds."""
    comp_fail: dict[str, int] = field(default_factory=dict)
    """Action -> how many compensation attempts fail (a large number: always)."""
    gates: dict[str, anyio.Event] = field(default_factory=dict)
    """Action -> an event it waits for before finishing."""
    hang: set[str] = field(default_factory=set)
    entered: dict[str, anyio.Event] = field(default_factory=dict)
    """Action -> an event set when it starts executing."""
    sleep: dict[str, float] = field(default_factory=dict)


@dataclass
class Journal:
    entries: list[tuple[str, str, float]] = field(default_factory=list)
    """(what, action, time): what is execute, done, compensate, compensated."""

    def add(self, what: str, action: str) -> None:
        self.entries.append((what, action, anyio.current_time()))

    def names(self, what: str) -> list[str]:
        return [a for w, a, _ in self.entries if w == what]

    def at(self, what: str, action: str) -> float:
        return next(t for w, a, t in self.entries if w == what and a == action)


class Step(Action):
    """Journals its execution and compensation; behaves as the script says."""

    input_schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    }
    output_schema = {"type": "object", "properties": {"value": {"type": "string"}}}

    def __init__(self, journal: Journal, script: Script | None = None) -> None:
        self.journal = journal
        self.script = script or Script()
        self.contexts: list[tuple[str, int, str]] = []

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        name = inputs["name"]
        self.contexts.append((name, ctx.attempt, ctx.idempotency_key))
        self.journal.add("execute", name)
        script = self.script
        if name in script.entered:
            script.entered[name].set()
        if name in script.sleep:
            await anyio.sleep(script.sleep[name])
        if name in script.gates:
            await script.gates[name].wait()
        if name in script.hang:
            await anyio.sleep_forever()
        if name in script.bad_input:
            raise InputError(f"{name}: bad input")
        if name in script.fatal:
            raise FatalError(f"{name} failed")
        if script.flaky.get(name, 0) > 0:
            script.flaky[name] -= 1
            raise RuntimeError(f"{name} flaked")
        await anyio.lowlevel.checkpoint()
        self.journal.add("done", name)
        return {"value": f"{name}-out"}

    async def compensate(
        self, ctx: ActionContext, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        name = inputs["name"]
        assert outputs == {"value": f"{name}-out"}
        self.journal.add("compensate", name)
        await anyio.lowlevel.checkpoint()
        if self.script.comp_fail.get(name, 0) > 0:
            self.script.comp_fail[name] -= 1
            raise RuntimeError(f"cannot undo {name}")
        self.journal.add("compensated", name)


class FakeClock:
    """A clock that never sleeps: sleeping moves `now` on and records the delay."""

    def __init__(self) -> None:
        self.t = 1_000_000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await anyio.lowlevel.checkpoint()
