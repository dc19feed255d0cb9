"""What the compiler knows of a fan-out's types: the elements of the array a `for_each`
names, their fields, and the `results` output it produces.

Schemas are read, never evaluated: a schema that does not say (no `type`, no `items`)
leaves the check to run time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .saga_schema import type_words

RESULTS = "results"
"""The one output of a `for_each` action: each element's outputs, in order."""


def results_schema(output_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of a `for_each` action's `results`, from its plugin's output schema."""
    return {"type": "array", "items": dict(output_schema)}


def items_of(array_schema: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The schema of each element of an array schema (None: not said)."""
    items = array_schema.get("items") if array_schema is not None else None
    return items if isinstance(items, Mapping) else None


def declares(schema: Mapping[str, Any], name: str) -> bool:
    """Whether an object schema lets `name` exist: a property, a pattern or open extras."""
    if name in _mapping(schema.get("properties")):
        return True
    if any(re.search(p, name) for p in _mapping(schema.get("patternProperties"))):
        return True
    extra = schema.get("additionalProperties")
    return extra is True or isinstance(extra, Mapping)


def field_schema(
    element: Mapping[str, Any] | None, path: tuple[str, ...]
) -> tuple[Mapping[str, Any] | None, str | None]:
    """The schema of `item.PATH` given the element schema: (schema or None when unknown,
    None), or (None, why no element can have that field)."""
    schema = element
    for depth, name in enumerate(path):
        if schema is None:
            return None, None
        where = ".".join(("item", *path[:depth]))
        types = types_of(schema)
        if types is not None and "object" not in types:
            return None, f"{where} is {type_words(sorted(types))}: it has no field '{name}'"
        if "properties" not in schema and types is None:
            return None, None  # an element schema that does not say what it holds
        if not declares(schema, name):
            declared = sorted(_mapping(schema.get("properties")))
            listed = f" (its fields: {', '.join(declared)})" if declared else ""
            return None, f"{where} has no field '{name}'{listed}"
        found = _mapping(schema.get("properties")).get(name)
        schema = found if isinstance(found, Mapping) else None
    return schema, None


def types_of(schema: Any) -> set[str] | None:
    """The JSON types a schema declares with `type`, or None when it does not say."""
    declared = schema.get("type") if isinstance(schema, Mapping) else None
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list) and all(isinstance(t, str) for t in declared):
        return set(declared)
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
