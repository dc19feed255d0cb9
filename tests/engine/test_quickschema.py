"""The fast "surely valid" check for simple schemas never accepts what jsonschema rejects."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given
from hypothesis import strategies as st
from sagactl.engine.quickschema import surely_valid

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=8,
)
_TYPE = st.sampled_from(["object", "string", "boolean", "array", "null", "integer", "number"])
_SCHEMAS = st.recursive(
    st.fixed_dictionaries({"type": _TYPE | st.lists(_TYPE, min_size=1, max_size=2)}),
    lambda inner: st.fixed_dictionaries(
        {"type": _TYPE},
        optional={
            "properties": st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
            "minLength": st.integers(0, 3),
            "description": st.text(max_size=3),
        },
    ),
    max_leaves=5,
)


class TestSurelyValid:
    @given(_SCHEMAS, _VALUES)
    def test_never_accepts_an_invalid_value(self, schema: dict[str, Any], value: Any) -> None:
        """Whenever it says valid, jsonschema (Draft 2020-12) agrees."""
        if surely_valid(schema, value):
            assert jsonschema.Draft202012Validator(schema).is_valid(value)

    def test_accepts_the_common_output_schema(self) -> None:
        """A typed object with typed properties is checked without jsonschema."""
        schema = {"type": "object", "properties": {"done": {"type": "boolean"}}}
        assert surely_valid(schema, {"done": True})
        assert surely_valid(schema, {"other": 1})

    def test_rejects_wrong_types(self) -> None:
        """A property of the wrong type, or a non-object, is not waved through."""
        schema = {"type": "object", "properties": {"done": {"type": "boolean"}}}
        assert not surely_valid(schema, {"done": 1})
        assert not surely_valid(schema, [])
        assert not surely_valid({"type": "boolean"}, 0)

    def test_leaves_other_keywords_to_jsonschema(self) -> None:
        """A keyword it does not know, or number types, make it defer."""
        assert not surely_valid({"type": "object", "required": ["x"]}, {"x": 1})
        assert not surely_valid({"type": "integer"}, 1)
        assert not surely_valid({"type": "object", "properties": {"x": False}}, {"x": 1})
