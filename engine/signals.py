"""`wait.signal`: the built-in action that parks a run until a signal delivers its data.

The action looks for its signal in the store (`run_signals`, read and marked consumed in
the action's own transaction, so the consumption commits with its completion). When
there is none yet it raises `Parked`: the forward phase stops it without a failure, and
once nothing else can run the run is parked `waiting`, held by no process
(`sagactl.engine.parking` wakes it). A signal sent before the wait began is simply found
there. When its `timeout` has passed it fails for good, and the run compensates.

The wait's deadline is set when it first runs and kept as its checkpoint, so every
later wake measures from the same start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from .action import JSON, Action, ActionContext, Inputs, Outputs
from .durations import EXAMPLES, parse_duration
from .errors import FatalError, InputError
from .json_values import NotJson, check_json
from .model import CompiledSaga, plain
from .quickschema import certainly_usable

WAIT_SIGNAL = "wait.signal"
_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_-]{0,127}$"

JSONPath = tuple[str | int, ...]


class Parked(Exception):
    """Raised by `wait.signal` when its signal has not come: the action waits, it did not
    fail. Only the forward phase sees it."""

    def __init__(self, signal: str, deadline: float | None) -> None:
        super().__init__(f"waiting for signal {signal!r}")
        self.signal = signal
        self.deadline = deadline


class SignalTimeout(FatalError):
    """No signal came before the wait's timeout: the action fails for good."""

    code = "signal_timeout"


class SignalRefused(InputError):
    """A signal the run cannot take: unknown name, data breaking its schema, sent twice,
    or a run that finished. Nothing is stored."""

    code = "signal_refused"


class WaitSignal(Action):
    """Wait until `sagactl signal RUN NAME` delivers data; its output `data` is that data."""

    input_schema: ClassVar[Mapping[str, JSON]] = {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {
                "description": "The signal's name: `sagactl signal RUN NAME`.",
                "type": "string",
                "pattern": _NAME_PATTERN,
            },
            "timeout": {
                "description": f"How long to wait before failing (e.g. {EXAMPLES}); none: ever.",
                "type": ["string", "number"],
            },
            "schema": {
                "description": "A JSON Schema the signal's data must match.",
                "type": ["object", "boolean"],
            },
        },
    }
    output_schema: ClassVar[Mapping[str, JSON]] = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"description": "The data the signal delivered (null: none)."}},
    }

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        name = str(inputs["name"])
        deadline = await _deadline(ctx, inputs.get("timeout"))
        async with ctx.transaction() as tx:
            found = await tx.fetchone(
                "SELECT data, at FROM run_signals"
                " WHERE run_id = ? AND name = ? AND consumed IS NULL",
                (ctx.run_id, name),
            )
            # A signal sent after the deadline comes too late, even if the run wakes first.
            if found is not None and (deadline is None or float(found[1]) <= deadline):  # type: ignore[arg-type]
                await tx.execute(
                    "UPDATE run_signals SET consumed = ? WHERE run_id = ? AND name = ?",
                    (time.time(), ctx.run_id, name),
                )
                data: JSON = json.loads(str(found[0]))
                return {"data": data}
        if deadline is not None and time.time() >= deadline:
            raise SignalTimeout(f"no signal {name!r} came within {inputs.get('timeout')}")
        raise Parked(name, deadline)


async def _deadline(ctx: ActionContext, wait_for: JSON) -> float | None:
    """When the wait times out: set on its first run, kept as its checkpoint."""
    if wait_for is None:
        return None
    kept = ctx.last_checkpoint
    if isinstance(kept, Mapping) and isinstance(kept.get("deadline"), int | float):
        return float(kept["deadline"])  # type: ignore[arg-type]
    deadline = time.time() + parse_duration(wait_for)  # type: ignore[arg-type]
    await ctx.checkpoint({"deadline": deadline})
    return deadline


# -- what the compiler checks --------------------------------------------------------


def definition_problems(actions: Mapping[str, Any]) -> Iterator[tuple[JSONPath, str]]:
    """(path, problem) for every `wait.signal` whose `with:` cannot be used: a name that is
    not a literal, or taken by another wait, a timeout that is not a duration, a schema
    that is not a valid JSON Schema."""
    seen: dict[str, str] = {}
    for action, body in actions.items():
        if not isinstance(body, Mapping) or body.get("uses") != WAIT_SIGNAL:
            continue
        with_ = body.get("with")
        if not isinstance(with_, Mapping):
            continue
        here: JSONPath = ("actions", action, "with")
        name = with_.get("name")
        if isinstance(name, str):
            if "${{" in name:
                yield (*here, "name"), "a signal name must be written out, not a reference"
            elif name in seen:
                yield (*here, "name"), f"signal '{name}' is already waited for by '{seen[name]}'"
            else:
                seen[name] = action
        timeout = with_.get("timeout")
        if timeout is not None and not (isinstance(timeout, str) and "${{" in timeout):
            try:
                seconds = parse_duration(timeout)
            except (TypeError, ValueError):
                yield (*here, "timeout"), f"{timeout!r} is not a duration (e.g. {EXAMPLES})"
            else:
                if seconds <= 0:
                    yield (*here, "timeout"), "a timeout must be longer than 0 seconds"
        schema = with_.get("schema")
        if isinstance(schema, Mapping) and not certainly_usable(schema):
            from .json_schema import schema_problems  # jsonschema: only when in doubt

            for path, problem in schema_problems(schema):
                yield (*here, "schema", *path), problem


# -- what a sender checks ------------------------------------------------------------


def waits_of(saga: CompiledSaga) -> dict[str, str]:
    """Signal name -> the `wait.signal` action waiting for it."""
    return {
        str(spec.with_["name"]): name
        for name, spec in saga.actions.items()
        if spec.uses == WAIT_SIGNAL and isinstance(spec.with_.get("name"), str)
    }


def check_signal(saga: CompiledSaga, run_id: str, name: str, data: JSON) -> str:
    """The action waiting for signal `name` in `saga`, once `data` fits its schema;
    `SignalRefused` otherwise."""
    waits = waits_of(saga)
    action = waits.get(name)
    if action is None:
        known = ", ".join(sorted(waits)) or "none"
        raise SignalRefused(
            f"run {run_id} ({saga.name}) waits for no signal {name!r} (its signals: {known})"
        )
    try:
        check_json(data, f"signal {name}")
    except NotJson as exc:
        raise SignalRefused(str(exc)) from None
    schema = plain(saga.actions[action].with_.get("schema"))
    if schema is not None:
        from jsonschema.exceptions import best_match

        from .json_schema import validator

        error = best_match(validator(schema).iter_errors(data))
        if error is not None:
            where = "".join(f"[{p!r}]" for p in error.absolute_path)
            raise SignalRefused(f"signal {name}: data{where}: {error.message}")
    return action
