"""An action's input and output schemas, compiled once into checks run on every attempt.

Walking jsonschema's error iterator costs more than a no-op action itself, and most
plugin schemas are closed objects of typed properties. `SchemaCheck` compiles such a
schema into a plain predicate once; the predicate answers True only when the value is
certainly valid under every draft sagactl accepts. Anything else (a keyword it does not
know, a value it cannot judge exactly, an invalid value) goes to the jsonschema validator,
built once per schema too, which finds the error to report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

from .. import json_schema

Predicate = Callable[[Any], bool]

# Keywords that do not constrain a value.
_ANNOTATIONS = frozenset(
    {"title", "description", "$comment", "examples", "default", "deprecated", "$id"}
)
# Drafts in which `type`, `properties`, `required`, `additionalProperties`, `items` (as
# one schema), `minLength` and `maxLength` mean the same (not draft 3: `required` differs).
_DRAFTS = frozenset(
    {
        "",
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-07/schema",
        "http://json-schema.org/draft-06/schema#",
        "http://json-schema.org/draft-06/schema",
        "http://json-schema.org/draft-04/schema#",
        "http://json-schema.org/draft-04/schema",
    }
)
# Types whose check is exact in every draft. bool is not an integer; a float is left to
# jsonschema ("integer" accepts 1.0 in some drafts, not in others).
_PLAIN_TYPES: dict[str, type] = {"object": dict, "string": str, "boolean": bool, "array": list}
"""The types whose check is one isinstance: an object's members of these types are checked
inline (no call per member)."""


def _instance_of(kind: type) -> Predicate:
    return lambda v: isinstance(v, kind)


_TYPES: dict[str, Predicate] = {
    **{name: _instance_of(kind) for name, kind in _PLAIN_TYPES.items()},
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}
_PLAIN: dict[Predicate, type] = {_TYPES[name]: kind for name, kind in _PLAIN_TYPES.items()}
"""A plain type's predicate -> its type."""
_KNOWN = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minLength",
    "maxLength",
}


class _Unknown(Exception):
    """The schema uses something the fast path does not judge."""


def compile_predicate(schema: Any) -> Predicate | None:
    """A predicate True only for values certainly valid against `schema`; None when the
    schema is beyond the fast path (every value then goes to jsonschema)."""
    if not isinstance(schema, Mapping) or schema.get("$schema", "") not in _DRAFTS:
        return None
    try:
        return _compile({k: v for k, v in schema.items() if k != "$schema"})
    except _Unknown:
        return None


def _compile(schema: Any) -> Predicate:
    if schema is True:
        return lambda value: True
    if not isinstance(schema, Mapping) or not _KNOWN.issuperset(schema):
        raise _Unknown
    checks: list[Predicate] = []
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    additional = schema.get("additionalProperties", True)
    constrained = bool(properties or required or additional is not True)
    if schema.get("type") == "object" and constrained:
        # The usual action schema: one predicate for the type and the members.
        return _object(properties, required, additional, typed=True)
    if "type" in schema:
        checks.append(_type(schema["type"]))
    if "minLength" in schema or "maxLength" in schema:
        checks.append(_length(schema.get("minLength", 0), schema.get("maxLength")))
    if "items" in schema:
        checks.append(_items(_compile(schema["items"])))
    if constrained:
        checks.append(_object(properties, required, additional))
    if len(checks) == 1:
        return checks[0]
    return lambda value: all(check(value) for check in checks)


def _type(kinds: Any) -> Predicate:
    names = kinds if isinstance(kinds, list) else [kinds]
    if not names or not all(isinstance(n, str) and n in _TYPES for n in names):
        raise _Unknown
    tests = [_TYPES[n] for n in names]
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


def _length(low: Any, high: Any) -> Predicate:
    if not _count(low) or not (high is None or _count(high)):
        raise _Unknown
    top = float("inf") if high is None else high
    return lambda value: not isinstance(value, str) or low <= len(value) <= top


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _items(item: Predicate) -> Predicate:
    return lambda value: not isinstance(value, list) or all(item(v) for v in value)


def _object(properties: Any, required: Any, additional: Any, *, typed: bool = False) -> Predicate:
    """Members checked; `typed`: the value must be an object, too."""
    if not isinstance(properties, Mapping) or not isinstance(required, list):
        raise _Unknown
    if not all(isinstance(name, str) for name in required):
        raise _Unknown
    subs = {name: _compile(sub) for name, sub in properties.items()}
    plain = {name: _PLAIN[sub] for name, sub in subs.items() if sub in _PLAIN}
    needed = tuple(required)
    if additional is True:
        extra: Predicate | None = None
        closed = False
    elif additional is False:
        extra, closed = None, True
    else:
        extra, closed = _compile(additional), False

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return not typed  # not an object: only `type` constrains it
        for name in needed:
            if name not in value:
                return False
        for key, inner in value.items():
            kind = plain.get(key)
            if kind is not None:
                if not isinstance(inner, kind):
                    return False
                continue
            sub = subs.get(key)
            if sub is not None:
                if not sub(inner):
                    return False
            elif closed or (extra is not None and not extra(inner)):
                return False
        return True

    return check


class SchemaCheck:
    """One schema's checks: the compiled predicate, then jsonschema for the rest."""

    __slots__ = ("_predicate", "_schema", "_validator")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._schema = schema
        self._predicate = compile_predicate(schema)
        self._validator: Any = None

    def error(self, value: Any) -> jsonschema.ValidationError | None:
        """The best error to report, or None when `value` is valid."""
        predicate = self._predicate
        if predicate is not None and predicate(value):
            return None
        if self._validator is None:
            self._validator = json_schema.validator(self._schema)
        found: jsonschema.ValidationError | None = jsonschema.exceptions.best_match(
            self._validator.iter_errors(value)
        )
        return found


_CHECKS: dict[int, tuple[Mapping[str, Any], SchemaCheck]] = {}


def check_for(schema: Mapping[str, Any]) -> SchemaCheck:
    """One check per schema object, for the life of the process (the schema is kept
    referenced so its id stays its own)."""
    found = _CHECKS.get(id(schema))
    if found is None or found[0] is not schema:
        found = _CHECKS[id(schema)] = (schema, SchemaCheck(schema))
    return found[1]
