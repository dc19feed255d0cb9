"""A fast "valid" for the simplest JSON Schemas (type and properties only), before jsonschema.

Most action schemas are `{"type": "object", "properties": {NAME: {"type": T}}}`; building
jsonschema's error iterator for them costs more than the no-op action itself. `surely_valid`
answers True only when the value certainly satisfies the schema under any draft; anything
else (a keyword it does not know, a type it does not check exactly) is left to jsonschema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Keywords that do not constrain the value (annotations) plus the two it checks.
_KNOWN = frozenset({"type", "properties", "title", "description"})

# Types whose check is one isinstance, the same in every draft (bool is not an integer,
# and "integer"/"number" are left to jsonschema for floats like 1.0).
_TYPES: dict[str, Any] = {
    "object": dict,
    "string": str,
    "boolean": bool,
    "array": list,
    "null": type(None),
}


def surely_valid(schema: Any, value: Any) -> bool:
    """True if `value` is certainly valid against `schema`; False means "ask jsonschema"."""
    if schema is True:
        return True
    if not isinstance(schema, Mapping) or not _KNOWN.issuperset(schema):
        return False
    if "type" in schema:
        kinds = schema["type"]
        names = kinds if isinstance(kinds, list) else [kinds]
        if not any(isinstance(name, str) and _is(name, value) for name in names):
            return False
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, Mapping):
            return False
        if isinstance(value, dict):
            for key, sub in properties.items():
                if key in value and not surely_valid(sub, value[key]):
                    return False
    return True


def _is(name: str, value: Any) -> bool:
    kind = _TYPES.get(name)
    return kind is not None and isinstance(value, kind)
