"""Checking values against JSON Schemas, safely: RE2 patterns, schemas checked whole first.

A saga's input schemas come from its author and its values from whoever runs it, so a
`pattern` such as `^(a+)+$` with a hostile value would make Python's backtracking `re`
run for ever. Every validator sagactl builds matches `pattern`, `patternProperties` and
the additional-property test with RE2, which runs in time linear in the value. Before a
schema is used, `schema_problems` checks it whole: the metaschema, every pattern compiles
under RE2 (no lookaround or backreferences), and every `$ref` resolves inside the schema
(remote references are never fetched).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache, lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

JSONPath = tuple[str | int, ...]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print its own line on stderr for a bad pattern
_BASE = "urn:sagactl:schema"


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


def _search(pattern: str, text: str) -> bool:
    return _compiled(pattern).search(text) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = sorted(
        (key for key in instance if key not in properties)
        if not patterns
        else (
            key
            for key in instance
            if key not in properties and not any(_search(p, key) for p in patterns)
        ),
        key=str,
    )
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:  # jsonschema's own wording
        listed = ", ".join(repr(extra) for extra in extras)
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            regexes = ", ".join(repr(p) for p in sorted(patterns))
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({listed} {verb} unexpected)"
            )


_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


@cache
def _safe(cls: type[Validator]) -> type[Validator]:
    """`cls` with the pattern keywords matched by RE2."""
    kept = {k: v for k, v in _KEYWORDS.items() if k in cls.VALIDATORS}
    safe: type[Validator] = extend(cls, kept)
    return safe


def validator(schema: Mapping[str, Any] | bool) -> Validator:
    """A validator for `schema` (its `$schema`'s draft, 2020-12 by default) that matches
    patterns with RE2 and never fetches a remote `$ref`."""
    cls = _safe(validator_for(schema, Draft202012Validator))
    return cls(schema, registry=_registry(schema))


def _registry(schema: Mapping[str, Any] | bool) -> Registry[Any]:
    resource = specification_with(_dialect(schema), default=DRAFT202012).create_resource(schema)
    registry: Registry[Any] = Registry().with_resource(_BASE, resource)
    return registry


def _dialect(schema: Mapping[str, Any] | bool) -> str:
    return str(schema.get("$schema", "")) if isinstance(schema, Mapping) else ""


def schema_problems(schema: Any) -> Iterator[tuple[JSONPath, str]]:
    """(path inside the schema, what is wrong) for each problem; nothing when usable."""
    try:
        validator_for(schema, Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        yield tuple(exc.absolute_path), f"not a valid JSON Schema: {exc.message}"
        return
    resolver = _registry(schema).resolver(base_uri=_BASE)
    uses_pattern_properties = any(_walk(schema, "patternProperties"))
    for path, node in _walk(schema):
        if isinstance(node.get("pattern"), str):
            problem = _pattern_problem(node["pattern"])
            if problem:
                yield (*path, "pattern"), problem
        for key in (
            node.get("patternProperties", {})
            if isinstance(node.get("patternProperties"), Mapping)
            else ()
        ):
            problem = _pattern_problem(key)
            if problem:
                yield (*path, "patternProperties", key), problem
        ref = node.get("$ref")
        if isinstance(ref, str):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                yield (*path, "$ref"), f"$ref {ref!r} cannot be resolved inside this schema"
        if "unevaluatedProperties" in node and uses_pattern_properties:
            yield (
                (*path, "unevaluatedProperties"),
                "unevaluatedProperties cannot be combined with patternProperties here "
                "(their matching would not be bounded)",
            )


def _pattern_problem(pattern: str) -> str | None:
    try:
        _compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        return (
            f"pattern {pattern!r} is not supported: {text} "
            "(patterns are matched with RE2: no lookaround or backreferences)"
        )
    return None


def _walk(
    schema: Any, keyword: str | None = None, path: JSONPath = ()
) -> Iterator[tuple[JSONPath, Mapping[str, Any]]]:
    """Every mapping inside `schema` with its path (those holding `keyword`, if given)."""
    todo: list[tuple[JSONPath, Any]] = [(path, schema)]
    while todo:
        here, node = todo.pop()
        if isinstance(node, Mapping):
            if keyword is None or keyword in node:
                yield here, node
            todo.extend(((*here, k), v) for k, v in node.items())
        elif isinstance(node, list):
            todo.extend(((*here, i), v) for i, v in enumerate(node))
