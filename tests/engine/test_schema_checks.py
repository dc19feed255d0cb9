"""The compiled schema checks never accept what jsonschema rejects, and report its errors."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given
from hypothesis import strategies as st
from sagactl.engine.scheduler.schema_checks import SchemaCheck, compile_predicate

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abcd"), inner),
    max_leaves=8,
)
_TYPE = st.sampled_from(["object", "string", "boolean", "array", "null", "integer", "number"])
_NAMES = st.sampled_from("abc")
_SCHEMAS = st.recursive(
    st.fixed_dictionaries({"type": _TYPE | st.lists(_TYPE, min_size=1, max_size=2)}),
    lambda inner: st.fixed_dictionaries(
        {},
        optional={
            "type": _TYPE,
            "properties": st.dictionaries(_NAMES, inner, max_size=3),
            "required": st.lists(_NAMES, max_size=2, unique=True),
            "additionalProperties": st.booleans() | inner,
            "items": inner,
            "minLength": st.integers(0, 3),
            "maxLength": st.integers(0, 3),
            "description": st.text(max_size=3),
        },
    ),
    max_leaves=5,
)
_DRAFTS = {
    "https://json-schema.org/draft/2020-12/schema": jsonschema.Draft202012Validator,
    "http://json-schema.org/draft-07/schema#": jsonschema.Draft7Validator,
    "http://json-schema.org/draft-04/schema#": jsonschema.Draft4Validator,
}
CLOSED = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"done": {"type": "boolean"}, "name": {"type": "string", "maxLength": 3}},
    "required": ["done"],
    "additionalProperties": False,
}


class TestPredicate:
    @given(_SCHEMAS, _VALUES, st.sampled_from(sorted(_DRAFTS)))
    def test_never_accepts_an_invalid_value(
        self, schema: dict[str, Any], value: Any, draft: str
    ) -> None:
        """Whenever the predicate says valid, jsonschema (in the schema's draft) agrees."""
        schema = {"$schema": draft, **schema}
        predicate = compile_predicate(schema)
        if predicate is not None and predicate(value):
            assert _DRAFTS[draft](schema).is_valid(value)

    def test_compiles_closed_objects_of_typed_properties(self) -> None:
        """The shape plugins declare is judged without jsonschema, both ways."""
        predicate = compile_predicate(CLOSED)
        assert predicate is not None
        assert predicate({"done": True}) and predicate({"done": False, "name": "abc"})
        assert not predicate({"done": 1})
        assert not predicate({"name": "a"})  # `done` is required
        assert not predicate({"done": True, "other": 1})  # closed
        assert not predicate({"done": True, "name": "abcd"})  # too long
        assert not predicate([])

    def test_leaves_other_keywords_and_drafts_to_jsonschema(self) -> None:
        """A keyword it does not know, or draft 3 (whose `required` differs), is not
        compiled; floats are never judged integers by it."""
        assert compile_predicate({"type": "string", "pattern": "^a$"}) is None
        assert compile_predicate({"properties": {"x": {"enum": [1]}}}) is None
        draft3 = {"$schema": "http://json-schema.org/draft-03/schema#", "type": "object"}
        assert compile_predicate(draft3) is None
        integer = compile_predicate({"type": "integer"})
        assert integer is not None and not integer(1.0) and integer(1) and not integer(True)


class TestSchemaCheck:
    def test_valid_values_have_no_error(self) -> None:
        assert SchemaCheck(CLOSED).error({"done": True}) is None
        assert SchemaCheck({"type": "string", "pattern": "^a"}).error("abc") is None

    def test_reports_jsonschemas_error(self) -> None:
        """An invalid value gets jsonschema's best error, with its path."""
        error = SchemaCheck(CLOSED).error({"done": "yes"})
        assert error is not None and list(error.absolute_path) == ["done"]
        assert "is not of type 'boolean'" in error.message
        extra = SchemaCheck(CLOSED).error({"done": True, "x": 1})
        assert extra is not None and "Additional properties" in extra.message

    def test_patterns_are_matched_with_re2(self) -> None:
        """What the fast path leaves out goes to sagactl's safe validator (RE2 patterns)."""
        error = SchemaCheck({"type": "string", "pattern": "^(a+)+$"}).error("a" * 40 + "!")
        assert error is not None and "does not match" in error.message
