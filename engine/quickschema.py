"""A fast "valid" for the simplest JSON Schemas (type and properties only), before jsonschema.

Most action schemas are `{"type": "object", "properties": {NAME: {"type": T}}}`; building
jsonschema's error iterator for them costs more than the no-op action itself. `surely_valid`
answers True only when the value certainly satisfies the schema under any draft; anything
else (a keyword it does not know, a type it does not check exactly) is left to jsonschema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
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


# -- the compiler's fast path: whole Draft 2020-12 documents, before jsonschema ------------
#
# `sagactl validate` checks a definition against the saga schema, each `inputs:` schema
# against the metaschema and each `with:` against its action's input schema. A valid
# definition passes all three; proving that with the keywords below spares importing
# jsonschema at all. Anything these functions do not know answers False, and the caller
# asks jsonschema, whose errors (and their wording) are then exactly what they were.

_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "format", "deprecated"}
)
"""Keywords that never fail a value (`format` only annotates under Draft 2020-12 unless a
format checker is given, and ours are not)."""

_KEY_CHECKS = frozenset({"required", "additionalProperties", "propertyNames", "minProperties"})
"""The keywords still checked on a value that holds a reference (the compiler keeps their
errors: which keys a `with:` has is known before the run)."""

_SIZES = {
    "minLength": (str, 1),
    "maxLength": (str, -1),
    "minItems": (list, 1),
    "maxItems": (list, -1),
    "minProperties": (dict, 1),
    "maxProperties": (dict, -1),
}
_BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
_JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Search = Callable[[str, str], bool]
"""`search(pattern, text)`: whether the pattern matches, as the validator would match it."""


def certainly_valid(
    schema: Any,
    value: Any,
    *,
    search: Search | None = None,
    holds_reference: Callable[[Any], bool] | None = None,
) -> bool:
    """True only if jsonschema (Draft 2020-12, no format checker) would find no error in
    `value` against `schema`; False means "ask jsonschema". `search` matches `pattern`
    (None: a pattern is not decided here). A value for which `holds_reference` is true is
    only checked for its keys (the compiler drops its other errors)."""
    if isinstance(schema, Mapping):
        dialect = schema.get("$schema", _DIALECT)
        if dialect != _DIALECT and dialect != _DIALECT + "#":
            return False
    return _Check(schema, search, holds_reference).valid(schema, value)


class _Check:
    def __init__(
        self, root: Any, search: Search | None, holds_reference: Callable[[Any], bool] | None
    ) -> None:
        self.root = root
        self.search = search
        self.holds_reference = holds_reference

    def valid(self, schema: Any, value: Any, depth: int = 0) -> bool:
        if schema is True:
            return True
        if not isinstance(schema, Mapping) or depth > 64:
            return False
        keys_only = self.holds_reference is not None and self.holds_reference(value)
        for keyword, argument in schema.items():
            if keyword in _ANNOTATIONS or keyword == "$defs":
                continue
            if keyword in ("$schema", "$id"):
                if schema is not self.root:  # a nested resource: other rules for $ref
                    return False
                continue
            if keys_only and keyword not in _KEY_CHECKS and keyword not in _DESCENDING:
                continue
            if not self.keyword(keyword, argument, schema, value, depth):
                return False
        return True

    def keyword(
        self, keyword: str, argument: Any, schema: Mapping[str, Any], value: Any, depth: int
    ) -> bool:
        if keyword == "type":
            names = argument if isinstance(argument, list) else [argument]
            return any(isinstance(n, str) and _is_type(n, value) for n in names)
        if keyword in ("enum", "const"):
            options = argument if keyword == "enum" else [argument]
            return isinstance(options, list) and any(_same(value, o) for o in options)
        if keyword in _SIZES:
            kind, sign = _SIZES[keyword]
            if not isinstance(value, kind):
                return True
            return _count(argument) and sign * (len(value) - argument) >= 0
        if keyword in _BOUNDS:
            return _within(keyword, argument, value)
        if keyword == "pattern":
            if not isinstance(value, str):
                return True
            return (
                self.search is not None
                and isinstance(argument, str)
                and self.search(argument, value)
            )
        if keyword == "required":
            if not isinstance(value, dict):
                return True
            return isinstance(argument, list) and all(
                isinstance(k, str) and k in value for k in argument
            )
        if keyword == "properties":
            if not isinstance(argument, Mapping):
                return False
            if not isinstance(value, dict):
                return True
            return all(
                self.valid(sub, value[k], depth + 1) for k, sub in argument.items() if k in value
            )
        if keyword == "additionalProperties":
            if "patternProperties" in schema:
                return False
            if not isinstance(value, dict):
                return True
            known = schema.get("properties", {})
            extras = [k for k in value if k not in known]
            return all(self.valid(argument, value[k], depth + 1) for k in extras)
        if keyword == "propertyNames":
            if not isinstance(value, dict):
                return True
            return all(self.valid(argument, key, depth + 1) for key in value)
        if keyword == "items":
            if "prefixItems" in schema:
                return False
            if not isinstance(value, list):
                return True
            return all(self.valid(argument, item, depth + 1) for item in value)
        if keyword == "uniqueItems":
            if argument is False or not isinstance(value, list):
                return argument is False or argument is True
            strings = all(isinstance(item, str) for item in value)
            return argument is True and strings and len(set(value)) == len(value)
        if keyword == "allOf":
            return isinstance(argument, list) and all(
                self.valid(sub, value, depth + 1) for sub in argument
            )
        if keyword == "$ref":
            target = self.resolve(argument)
            return target is not None and self.valid(target, value, depth + 1)
        return False  # a keyword not decided here

    def resolve(self, ref: Any) -> Any:
        """A `#/...` JSON pointer into the root schema (None: anything else)."""
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return None
        node = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node


_DESCENDING = frozenset({"properties", "items", "allOf", "$ref"})
"""Keywords that check parts of a value, which may not hold references themselves."""


def _is_type(name: str, value: Any) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return _is(name, value)


def _same(value: Any, option: Any) -> bool:
    """jsonschema's equality for scalars (True is not 1); anything else: not decided."""
    scalar = (str, int, float, bool, type(None))
    if not isinstance(value, scalar) or not isinstance(option, scalar):
        return False
    if isinstance(value, bool) or isinstance(option, bool):
        return value is option
    return value == option


def _count(argument: Any) -> bool:
    return isinstance(argument, int) and not isinstance(argument, bool) and argument >= 0


def _within(keyword: str, bound: Any, value: Any) -> bool:
    if not isinstance(bound, int | float) or isinstance(bound, bool):
        return False
    if not isinstance(value, int | float) or isinstance(value, bool):
        return True
    if keyword == "minimum":
        return bool(value >= bound)
    if keyword == "maximum":
        return bool(value <= bound)
    if keyword == "exclusiveMinimum":
        return bool(value > bound)
    return bool(value < bound)


def certainly_usable(schema: Any, depth: int = 0) -> bool:
    """True only if `json_schema.schema_problems` would find nothing wrong with `schema`:
    the 2020-12 metaschema (with its `regex` format) accepts it, every pattern compiles
    under both `re` and RE2, and it has no `$ref` to resolve. False: ask jsonschema."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, Mapping) or depth > 64:
        return False
    return all(
        (depth == 0 and argument in (_DIALECT, _DIALECT + "#"))
        if keyword == "$schema"
        else _usable(keyword, argument, depth)
        for keyword, argument in schema.items()
    )


def _usable(keyword: str, argument: Any, depth: int) -> bool:
    if keyword in ("title", "description", "$comment", "format"):
        return isinstance(argument, str)
    if keyword in ("default", "const"):
        return True
    if keyword in ("examples", "enum"):
        return isinstance(argument, list)
    if keyword in ("deprecated", "uniqueItems"):
        return isinstance(argument, bool)
    if keyword == "type":
        names = argument if isinstance(argument, list) else [argument]
        unique = len({str(n) for n in names}) == len(names)
        return (
            bool(names) and unique and all(isinstance(n, str) and n in _JSON_TYPES for n in names)
        )
    if keyword in _SIZES:
        return _count(argument)
    if keyword in _BOUNDS:
        return isinstance(argument, int | float) and not isinstance(argument, bool)
    if keyword == "pattern":
        return isinstance(argument, str) and _compiles(argument)
    if keyword == "required":
        return (
            isinstance(argument, list)
            and all(isinstance(k, str) for k in argument)
            and len(set(argument)) == len(argument)
        )
    if keyword == "properties":
        return isinstance(argument, Mapping) and all(
            certainly_usable(sub, depth + 1) for sub in argument.values()
        )
    if keyword in ("additionalProperties", "items", "propertyNames"):
        return certainly_usable(argument, depth + 1)
    return False


def re2_search(pattern: str, text: str) -> bool:
    """`pattern` matched as sagactl's validators match it (`json_schema`: RE2)."""
    return _re2(pattern).search(text) is not None


@lru_cache(maxsize=1024)
def _re2(pattern: str) -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print its own line on stderr for a bad pattern
    return re2.compile(pattern, options)


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)  # the metaschema's `regex` format
        _re2(pattern)
    except Exception:  # re.error, re2.error: jsonschema words the problem
        return False
    return True
