"""A compiled definition is encoded once, and stored as the same text it always was."""

from __future__ import annotations

import json

from sagactl.engine import ActionSpec, CompiledSaga
from sagactl.engine.json_values import Encoded, dumps
from sagactl.engine.store.sql import dumps as store_dumps


def _saga() -> CompiledSaga:
    actions = {
        "a": ActionSpec(name="a", uses="x.y", with_={"n": 1}),
        "b": ActionSpec(
            name="b",
            uses="x.y",
            with_={"v": "${{ actions.a.outputs.v }}"},
            depends_on=frozenset("a"),
        ),
    }
    return CompiledSaga(name="enc", version=1, actions=actions)


def test_definition_is_worked_out_once_and_reads_as_to_dict() -> None:
    saga = _saga()
    definition = saga.definition()
    assert saga.definition() is definition
    assert definition == saga.to_dict()
    assert CompiledSaga.from_dict(definition).canonical_hash == saga.canonical_hash


def test_both_encoders_give_its_text_unchanged() -> None:
    """The store's text of a pinned definition is the canonical encoding of `to_dict()`."""
    saga = _saga()
    canonical = json.dumps(saga.to_dict(), sort_keys=True, separators=(",", ":"))
    assert dumps(saga.definition()) == store_dumps(saga.definition()) == canonical
    assert store_dumps({"b": 1, "a": [Encoded({"z": 1})]}) == '{"a":[{"z":1}],"b":1}'
