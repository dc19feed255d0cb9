"""What `run` and its siblings (`run --from`, `retry`, `unpause`) share: `--input K=V`
pairs as a saga's inputs, the new run's id printed once the run exists, and the line and
exit code a run's outcome gets."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import click

from ..action import JSON
from ..api import RunResult
from ..errors import InputError
from ..events import Event
from ..json_values import NotJson, parse_json
from ..model import CompiledSaga
from ..states import RunState


def parse_inputs(saga: CompiledSaga, pairs: tuple[str, ...]) -> dict[str, JSON]:
    """`K=V` pairs as the saga's inputs: V is JSON when K's schema is not a plain string
    and V parses as JSON, else the string itself. Schemas are checked by the engine."""
    inputs: dict[str, JSON] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--input {pair!r}: expected NAME=VALUE")
        if key not in saga.inputs:
            known = ", ".join(sorted(saga.inputs)) or "none"
            raise InputError(f"--input {key}: saga {saga.name} has no such input (it has: {known})")
        inputs[key] = _value(key, saga.inputs[key], text)
    return inputs


def _value(key: str, schema: Mapping[str, JSON], text: str) -> JSON:
    """Text that parses as JSON is that value, unless it cannot be stored (NaN, 1e999,
    nesting too deep): those are refused. Other text is the string itself."""
    kind = schema.get("type")
    if kind == "string":
        return text
    try:
        value: JSON = parse_json(text)
    except NotJson as exc:
        raise InputError(f"--input {key}: {exc}") from None
    except ValueError:
        return text
    return value


def report(result: RunResult) -> int:
    """One line on stderr for a run that did not succeed; the exit code for it (a run
    parked waiting for a signal is not a failure: the live view says what it waits for)."""
    if result.state is RunState.PAUSED:
        click.echo(
            f"run {result.run_id} paused (its running actions finished):"
            f" continue it with 'sagactl unpause {result.run_id}'",
            err=True,
        )
    elif not result.ok and result.state is not RunState.WAITING:
        where = f" at {result.failed_action}" if result.failed_action else ""
        reason = f": {result.error}" if result.error else ""
        click.echo(f"error: run {result.run_id} {result.state}{where}{reason}", err=True)
    return result.exit_code


class RunIdAnnouncer:
    """An `on_event` handler printing the new run's id on stdout at its first committed
    event: after the store opened (a bad --db prints no id) and once the run is in it (so
    `sagactl logs -f ID` started from the printed id finds it). Call it with no event
    after the run, for a run that already existed and emitted nothing."""

    def __init__(self, run_id: str) -> None:
        self._run_id: str | None = run_id

    def __call__(self, event: Event | None = None) -> None:
        if self._run_id is not None:
            click.echo(self._run_id)
            sys.stdout.flush()
            self._run_id = None
