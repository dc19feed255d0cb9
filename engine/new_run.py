"""What a new run starts from: a fresh id, its inputs checked, and its pin (`NewRun`)."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping

import jsonschema

from .action import JSON
from .errors import InputError
from .json_schema import validator
from .json_values import NotJson, check_json, plain_json
from .model import CompiledSaga
from .providers import ActionProvider
from .references import Scope, resolve
from .store.base import NewRun, ParentLink

_ids = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(16)))


def new_run_id() -> str:
    """16 hex digits, random (not secret: run ids only need to be unique)."""
    return f"{_ids.getrandbits(64):016x}"


def check_inputs(saga: CompiledSaga, inputs: Mapping[str, JSON]) -> dict[str, JSON]:
    """The saga's inputs checked against their schemas, defaults filled in; `InputError`."""
    unknown = sorted(set(inputs) - set(saga.inputs))
    if unknown:
        raise InputError(f"saga {saga.name} has no input {unknown[0]!r}")
    checked: dict[str, JSON] = {}
    for name, schema in saga.inputs.items():
        plain = plain_json(schema)
        if name in inputs:
            value = inputs[name]
        elif "default" in plain:
            value = plain["default"]
        else:
            raise InputError(f"saga {saga.name} needs input {name!r}")
        try:
            check_json(value, f"input {name}")
        except NotJson as exc:
            raise InputError(str(exc)) from None
        error = jsonschema.exceptions.best_match(validator(plain).iter_errors(value))
        if error is not None:
            raise InputError(f"input {name}: {error.message}")
        checked[name] = value
    return checked


def pin_new_run(
    saga: CompiledSaga,
    inputs: Mapping[str, JSON] | None,
    provider: ActionProvider,
    *,
    run_id: str | None = None,
    node: str | None = None,
    parent: ParentLink | None = None,
) -> NewRun:
    """The new run: its inputs checked, the definition and plugin versions it pins (a
    child saga's definition is pinned inside it)."""
    checked = check_inputs(saga, inputs or {})
    the_id = run_id or new_run_id()
    return NewRun(
        run_id=the_id,
        saga=saga.name,
        definition_hash=saga.canonical_hash,
        definition=saga.definition(),
        inputs=checked,
        plugin_versions={name: provider.version(name) for name in saga.plugin_uses},
        node=node,
        retention=saga.retention,
        parent=parent,
        concurrency_key=concurrency_key(saga, the_id, checked),
        concurrency_limit=saga.concurrency.limit if saga.concurrency else None,
    )


def concurrency_key(saga: CompiledSaga, run_id: str, inputs: Mapping[str, JSON]) -> str | None:
    """The saga's `concurrency.key` with the run's inputs in it (None: the saga has none)."""
    if saga.concurrency is None:
        return None
    value = resolve(saga.concurrency.key, Scope(run_id, saga.name, inputs, {}))
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
