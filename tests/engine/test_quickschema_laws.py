"""The compiler's quick checks never say "valid" where jsonschema finds an error, so
skipping jsonschema on their word changes no outcome and no message."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from sagactl.engine.compiler import _KEY_CHECKS, _holds_reference
from sagactl.engine.json_schema import schema_problems, validator
from sagactl.engine.quickschema import certainly_usable, certainly_valid, re2_search

names = st.sampled_from(["a", "b", "c"])
types = st.sampled_from(["object", "array", "string", "number", "integer", "boolean", "null"])
patterns = st.sampled_from(["^a", "b$", "^[a-c]+$", "(", "a(?=b)", "^\\d+$"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.0, -2.0]),
    st.sampled_from(["a", "b", "ab", "12", "${{ inputs.a }}", "x ${{ actions.a.outputs.b }}"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=3)),
    max_leaves=8,
)


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(types, st.lists(types, min_size=1, max_size=2)),
            "enum": st.lists(scalars, max_size=3),
            "const": scalars,
            "minLength": st.integers(0, 2),
            "maxLength": st.integers(0, 2),
            "minimum": st.integers(-2, 2),
            "exclusiveMaximum": st.integers(-2, 2),
            "pattern": patterns,
            "minItems": st.integers(0, 2),
            "uniqueItems": st.booleans(),
            "format": st.just("email"),
            "multipleOf": st.just(2),
            "description": st.just("d"),
        },
    )


schemas = st.recursive(
    st.one_of(_leaf(), st.booleans()),
    lambda inner: st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("object")},
            optional={
                "properties": st.dictionaries(names, inner, max_size=3),
                "required": st.lists(names, max_size=2, unique=True),
                "additionalProperties": inner,
                "propertyNames": inner,
                "minProperties": st.integers(0, 2),
            },
        ),
        st.fixed_dictionaries({"items": inner}, optional={"type": st.just("array")}),
        st.fixed_dictionaries({"allOf": st.lists(inner, max_size=2)}),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=2)}),
    ),
    max_leaves=6,
)


class TestCertainlyValid:
    @settings(max_examples=400, deadline=None)
    @given(schemas, values)
    def test_valid_means_jsonschema_finds_nothing(self, schema: Any, value: Any) -> None:
        """Against the RE2 validator the compiler builds (and Python's `re`, as the saga
        schema is checked): no error where the quick check says valid."""
        if not certainly_usable(schema):
            return
        if certainly_valid(schema, value, search=re2_search):
            assert list(validator(schema).iter_errors(value)) == []
        plain = lambda p, t: re.search(p, t) is not None  # noqa: E731
        if certainly_valid(schema, value, search=plain):
            assert list(Draft202012Validator(schema).iter_errors(value)) == []

    @settings(max_examples=400, deadline=None)
    @given(schemas, values)
    def test_with_references_keeps_what_the_compiler_keeps(self, schema: Any, value: Any) -> None:
        """With references skipped, no error the compiler would keep."""
        if not certainly_usable(schema) or not certainly_valid(
            schema, value, search=re2_search, holds_reference=_holds_reference
        ):
            return
        kept = [
            error
            for error in validator(schema).iter_errors(value)
            if error.validator in _KEY_CHECKS or not _holds_reference(error.instance)
        ]
        assert kept == []

    def test_unknown_keywords_and_dialects_are_left_to_jsonschema(self) -> None:
        assert not certainly_valid({"anyOf": [{"type": "string"}]}, "a")
        assert not certainly_valid({"$schema": "http://json-schema.org/draft-07/schema#"}, 1)
        assert not certainly_valid({"type": "string", "pattern": "^a"}, "a")  # no search given
        assert certainly_valid({"$ref": "#/$defs/x", "$defs": {"x": {"type": "integer"}}}, 3)
        assert not certainly_valid({"$ref": "#/$defs/x", "$defs": {"x": {"type": "integer"}}}, "3")


class TestCertainlyUsable:
    @settings(max_examples=400, deadline=None)
    @given(schemas)
    def test_usable_means_no_problem(self, schema: Any) -> None:
        if certainly_usable(schema):
            assert list(schema_problems(schema)) == []

    def test_patterns_must_compile_under_re_and_re2(self) -> None:
        assert certainly_usable({"type": "string", "pattern": "^[a-z]+$"})
        assert not certainly_usable({"pattern": "a(?=b)"})  # lookahead: not RE2
        assert not certainly_usable({"pattern": "("})
        assert not certainly_usable({"$ref": "#/x"})
        assert not certainly_usable({"properties": {"a": {"$schema": "x"}}})
