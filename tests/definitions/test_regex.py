"""Issue 10 item 14 (and the `$ref` of item 15): patterns cannot hang, schemas are whole.

Values are matched against `pattern`/`patternProperties` with RE2, in linear time, so a
catastrophic pattern such as `^(a+)+$` meets a hostile value at once (with Python's `re`
these tests would hang until the per-test timeout). A pattern RE2 cannot run, or a `$ref`
that resolves to nothing, is refused by `validate` at its place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga, Engine, Inputs, Outputs
from sagactl.engine.action_plugins import ACTIONS, describe_action
from sagactl.engine.api import check_inputs
from sagactl.engine.errors import InputError, PluginError
from sagactl.engine.json_schema import schema_problems, validator
from sagactl.engine.plugin_registry import Plugin

CATASTROPHIC = "^(a+)+$"
HOSTILE = "a" * 100_000 + "!"


def _saga(inputs: dict[str, Any]) -> CompiledSaga:
    return CompiledSaga(
        name="r", version=1, inputs=inputs, actions={"a": ActionSpec(name="a", uses="echo")}
    )


class TestHostileValues:
    def test_saga_input_pattern(self) -> None:
        """A hostile value for a catastrophic input pattern is refused, not matched for ever."""
        saga = _saga({"x": {"type": "string", "pattern": CATASTROPHIC}})
        with pytest.raises(InputError, match=r"^input x: 'aaaa.*' does not match"):
            check_inputs(saga, {"x": HOSTILE})
        assert check_inputs(saga, {"x": "aaaa"}) == {"x": "aaaa"}

    def test_hostile_keys(self) -> None:
        """Keys are matched with RE2 too: patternProperties and additionalProperties."""
        schema = {
            "type": "object",
            "patternProperties": {CATASTROPHIC: {"type": "integer"}},
            "additionalProperties": False,
        }
        saga = _saga({"x": schema})
        with pytest.raises(InputError, match="does not match any of the regexes"):
            check_inputs(saga, {"x": {HOSTILE: 1}})
        with pytest.raises(InputError, match="is not of type 'integer'"):
            check_inputs(saga, {"x": {"aaa": "one"}})
        assert check_inputs(saga, {"x": {"aa": 1}}) == {"x": {"aa": 1}}

    def test_action_input_schema(self, tmp_path: Path) -> None:
        """An action's own input pattern, checked by the scheduler, refuses the value as
        bad input (the run ends compensated with exit code 2)."""

        class Echo(Action):
            input_schema = {"type": "object", "properties": {"v": {"pattern": CATASTROPHIC}}}

            async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
                return {}

        saga = CompiledSaga(
            name="r",
            version=1,
            inputs={"x": {"type": "string"}},
            actions={"a": ActionSpec(name="a", uses="echo", with_={"v": "${{ inputs.x }}"})},
        )

        async def main() -> Any:
            async with Engine(f"sqlite://{tmp_path / 'r.db'}", actions={"echo": Echo()}) as e:
                return await e.run(saga, {"x": HOSTILE})

        result = anyio.run(main)
        assert (result.state, result.exit_code) == ("compensated", 2)
        assert "does not match '^(a+)+$'" in result.error


PATTERNS = ["^[a-z][a-z0-9-]{0,62}$", "ab+c", "^x|y$", "[0-9]{2,3}", "(ab|cd)*e", "^$"]


class TestSameAnswersAsJsonschema:
    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(PATTERNS), st.text(alphabet="abcdexy0123-", max_size=12))
    def test_pattern_keywords_agree(self, pattern: str, text: str) -> None:
        """For patterns both engines run, the RE2 validator says what jsonschema's does."""
        schemas = [
            {"pattern": pattern},
            {"patternProperties": {pattern: {"type": "integer"}}, "additionalProperties": False},
            {"patternProperties": {pattern: False}, "additionalProperties": {"type": "string"}},
        ]
        for schema, value in zip(schemas, [text, {text: 1, "k": "v"}, {text: "s"}], strict=True):
            expected = sorted(
                e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(value)
            )
            assert sorted(e.message for e in validator(schema).iter_errors(value)) == expected
        assert bool(re.search(pattern, text)) == validator({"pattern": pattern}).is_valid(text)


class TestRefusedWhenValidated:
    def test_lookaround_pattern(self, problems: Callable[..., list[str]]) -> None:
        """A pattern RE2 cannot run is one error at the pattern, naming why."""
        found = problems(
            "inputs:\n  n: {type: string, pattern: '^(?=a)a$'}\nactions: {a: {uses: test.noop}}\n"
        )
        assert len(found) == 1
        assert found[0].startswith("5:30: inputs.n.pattern: pattern '^(?=a)a$' is not supported")
        assert "RE2" in found[0]

    def test_pattern_property_key(self, problems: Callable[..., list[str]]) -> None:
        """A patternProperties key RE2 cannot run is refused at that key."""
        found = problems(
            "inputs:\n  n:\n    type: object\n    patternProperties:\n      '(a)\\1': {}\n"
            "actions: {a: {uses: test.noop}}\n"
        )
        assert len(found) == 1 and found[0].startswith(
            "8:16: inputs.n.patternProperties.(a)\\1: pattern"
        )

    @pytest.mark.parametrize(
        "ref", ["#/$defs/missing", "#/nowhere", "https://example.com/s.json", "other.json"]
    )
    def test_unresolvable_ref(self, problems: Callable[..., list[str]], ref: str) -> None:
        """A $ref that resolves to nothing in the schema (remote ones are never fetched) is
        refused by validate at the $ref, instead of tracebacks when the saga runs."""
        found = problems(
            f"inputs:\n  n:\n    $defs: {{s: {{type: string}}}}\n    $ref: '{ref}'\n"
            "actions: {a: {uses: test.noop}}\n"
        )
        assert found == [f"7:11: inputs.n.$ref: $ref '{ref}' cannot be resolved inside this schema"]

    def test_resolvable_ref_is_used(self) -> None:
        """A local $ref that resolves works when values are checked."""
        schema = {"$defs": {"s": {"type": "string", "pattern": CATASTROPHIC}}, "$ref": "#/$defs/s"}
        assert list(schema_problems(schema)) == []
        assert not validator(schema).is_valid(HOSTILE)
        assert validator(schema).is_valid("aaa")

    def test_unbounded_unevaluated_properties(self) -> None:
        """unevaluatedProperties beside patternProperties (matched by jsonschema's own code)
        is refused."""
        schema = {"patternProperties": {"a": {}}, "unevaluatedProperties": False}
        [(path, problem)] = list(schema_problems(schema))
        assert path == ("unevaluatedProperties",) and "cannot be combined" in problem

    def test_plugin_schema(self) -> None:
        """An action whose schema has a pattern RE2 cannot run is a broken plugin."""

        class Bad(Action):
            input_schema = {"type": "object", "properties": {"v": {"pattern": "(x)\\1"}}}

            async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
                return {}

        plugin = Plugin(ACTIONS.name, "t.bad", "tests:Bad", "test-dist", "9.9", Bad)
        with pytest.raises(PluginError, match="unusable input_schema at 'properties/v/pattern'"):
            describe_action(plugin)
