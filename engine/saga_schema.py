"""The sagactl/v1 JSON Schema: loading it, folding action inputs in, and errors worded for people.

The schema itself is package data (`saga.schema.json`, Draft 2020-12). Validation errors
are mapped back to the YAML node they concern (`file:line:column`) and phrased as a
person would ("actions.load_config: unknown key 'wiht' (did you mean 'with'?)").
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from .action import ActionCatalog
from .errors import DefinitionError, Location
from .quickschema import certainly_valid
from .yaml_loader import JSONPath, YamlDocument, YamlNode, YamlScalar

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

SCHEMA_FILE = "saga.schema.json"
API_VERSION = "sagactl/v1"
KIND = "Saga"

_REFERENCE_ANYWHERE = r"\$\{\{"
"""Editors accept any string holding a reference where a typed value is expected."""

# What a failed `pattern` means, by the pattern it failed.
_PATTERN_MEANING = {
    "^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+$": "a duration (seconds, or e.g. 500ms, 10s, 10m, "
    "1h30m, 7d)",
    "^[a-z][a-z0-9-]{0,62}$": "a valid saga name (lower-case letters, digits and '-', "
    "starting with a letter, at most 63 characters)",
    "^[A-Za-z_][A-Za-z0-9_-]{0,127}$": "a valid name (letters, digits, '_' and '-', "
    "starting with a letter or '_')",
    "^\\s*\\$\\{\\{.*\\}\\}\\s*$": "one reference to an array, e.g. ${{ inputs.targets }}",
    "^\\s*\\$\\{\\{[\\s\\S]*\\}\\}\\s*$": "a condition written as ${{ EXPRESSION }}",
}
_YAML11_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n"})


class Locator(Protocol):
    """Where a path into the definition is written, and the node there when known."""

    def locate(self, path: JSONPath, *, key: bool = False) -> Location: ...

    def node_at(self, path: JSONPath) -> YamlNode | None: ...


class NoLocations:
    """The locator of a definition given as plain data: every path is just the source."""

    def __init__(self, source: str) -> None:
        self.source = source

    def locate(self, path: JSONPath, *, key: bool = False) -> Location:
        return Location(self.source)

    def node_at(self, path: JSONPath) -> YamlNode | None:
        return None


def locator_for(document: YamlDocument | Any, source: str) -> Locator:
    return document if isinstance(document, YamlDocument) else NoLocations(source)


@cache
def _packaged() -> str:
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def base_schema() -> dict[str, Any]:
    """The saga schema as shipped (a fresh copy: callers may change it)."""
    schema: dict[str, Any] = json.loads(_packaged())
    return schema


@cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(base_schema())


@cache
def _shipped() -> dict[str, Any]:
    """The saga schema, read once, for the quick check (never changed)."""
    return base_schema()


def _search(pattern: str, text: str) -> bool:
    """`pattern` as jsonschema's Draft 2020-12 validator matches it (Python's `re`)."""
    return re.search(pattern, text) is not None


def schema_with_actions(catalog: ActionCatalog) -> dict[str, Any]:
    """The saga schema with each installed action's input schema applied to its `with:`.

    `uses` lists the installed names (editors complete them); per name an `if`/`then`
    checks `with:`, where any string holding a `${{ }}` reference is accepted in place of
    a typed value, since it is only known when the saga runs.
    """
    schema = base_schema()
    action = schema["$defs"]["action"]
    names = sorted(catalog.names())
    if not names:
        return schema
    action["properties"]["uses"]["anyOf"] = [{"enum": names}, {"type": "string"}]
    rules = []
    for name in names:
        info = catalog.info(name)
        if info is None:
            continue
        with_schema = _accepting_references(info.input_schema)
        with_schema["$id"] = f"urn:sagactl:action:{name}:input"
        if info.description:
            with_schema.setdefault("description", info.description)
        rules.append(
            {
                "if": {"properties": {"uses": {"const": name}}, "required": ["uses"]},
                "then": {"properties": {"with": with_schema}},
            }
        )
    action["allOf"] = rules
    return schema


def _accepting_references(input_schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an input schema whose properties also accept a reference string."""
    schema = copy.deepcopy(dict(input_schema))
    schema.pop("$schema", None)
    schema.pop("$id", None)
    reference = {"type": "string", "pattern": _REFERENCE_ANYWHERE}
    properties = schema.get("properties")
    if isinstance(properties, dict):
        schema["properties"] = {
            key: {"anyOf": [value, reference]} for key, value in properties.items()
        }
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        schema["additionalProperties"] = {"anyOf": [extra, reference]}
    return schema


def validate_definition(data: Any, where: Locator) -> list[DefinitionError]:
    """Every way `data` breaks the saga schema, as located, readable errors.

    A definition the quick check proves valid needs no jsonschema (`sagactl validate`
    starts without importing it); any other is checked, and described, by jsonschema."""
    if certainly_valid(_shipped(), data, search=_search):
        return []
    return describe_all(_validator().iter_errors(data), (), where)


def describe_all(
    errors: Iterable[ValidationError], base: JSONPath, where: Locator
) -> list[DefinitionError]:
    """Readable, located errors for jsonschema's, without repeats; `base` prefixes paths."""
    found: dict[tuple[Location, str], DefinitionError] = {}
    for error in errors:
        for item in describe(error, base, where):
            found.setdefault((item.location or Location(""), item.message), item)
    return list(found.values())


def describe(error: ValidationError, base: JSONPath, where: Locator) -> list[DefinitionError]:
    """One jsonschema error as one or more DefinitionErrors (one per unknown key, say)."""
    path: list[str | int] = [*base, *error.absolute_path]
    kind = error.validator
    value: Any = error.validator_value
    instance = error.instance
    if "propertyNames" in error.relative_schema_path and isinstance(instance, str):
        meaning = _PATTERN_MEANING.get(str(error.schema.get("pattern")), "an allowed key")
        return [_at(where, [*path, instance], True, f"'{instance}' is not {meaning}", path)]
    if kind == "additionalProperties" and isinstance(instance, Mapping):
        return [
            _at(where, [*path, key], True, _unknown_key(key, _known_keys(error.schema)), path)
            for key in _extra_keys(instance, error.schema)
        ]
    if kind == "required" and isinstance(instance, Mapping):
        missing = [key for key in value if key not in instance]
        words = "key" if len(missing) == 1 else "keys"
        listed = ", ".join(f"'{key}'" for key in missing)
        return [_at(where, path, False, f"missing required {words} {listed}", path)]
    if kind == "type":
        message = f"expected {type_words(value)}, got {_got(instance)}"
        return [_at(where, path, False, message + _yaml_hint(where, path, value), path)]
    if kind == "const":
        return [_at(where, path, False, f"must be {_show(value)}, not {_got(instance)}", path)]
    if kind == "enum":
        choices = ", ".join(_show(v) for v in value)
        message = f"{_show(instance)} is not one of {choices}"
        if isinstance(instance, str):
            message += did_you_mean(instance, [v for v in value if isinstance(v, str)])
        return [_at(where, path, False, message, path)]
    if kind == "pattern":
        meaning = _PATTERN_MEANING.get(value, f"a string matching {value}")
        return [_at(where, path, False, f"{_show(instance)} is not {meaning}", path)]
    if kind in _BOUNDS:
        return [_at(where, path, False, f"{_BOUNDS[kind]} {value}, not {_show(instance)}", path)]
    if kind == "minProperties":
        what = "at least one entry" if value == 1 else f"at least {value} entries"
        return [_at(where, path, False, f"must have {what}", path)]
    if kind == "minLength" and value == 1:
        return [_at(where, path, False, "must not be empty", path)]
    if kind == "uniqueItems" and isinstance(instance, list):
        seen: list[Any] = []
        for index, item in enumerate(instance):
            if item in seen:
                message = f"{_show(item)} is listed twice"
                return [_at(where, [*path, index], False, message, [*path, index])]
            seen.append(item)
    if error.context:
        from jsonschema.exceptions import best_match

        return describe(best_match(error.context), base, where)
    if kind == "false" or value is False:
        return [_at(where, path, False, "is not allowed here", path)]
    return [_at(where, path, False, error.message, path)]


_BOUNDS = {
    "minimum": "must be at least",
    "maximum": "must be at most",
    "exclusiveMinimum": "must be more than",
    "exclusiveMaximum": "must be less than",
    "minLength": "must have a length of at least",
    "maxLength": "must have a length of at most",
    "minItems": "must list at least",
    "maxItems": "must list at most",
}


def dotted(path: JSONPath) -> str:
    """`actions.build.needs[0]`: a path as people write it."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += ("." if text else "") + step
    return text


def _at(
    where: Locator, locate: JSONPath, key: bool, message: str, named: JSONPath
) -> DefinitionError:
    prefix = dotted(named)
    return DefinitionError(
        f"{prefix}: {message}" if prefix else message, where.locate(locate, key=key)
    )


def _known_keys(schema: Mapping[str, Any]) -> list[str]:
    properties = schema.get("properties")
    return list(properties) if isinstance(properties, Mapping) else []


def _extra_keys(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    known = set(_known_keys(schema))
    patterns = list(schema.get("patternProperties") or ())
    return [
        key
        for key in instance
        if key not in known and not any(re.search(pattern, key) for pattern in patterns)
    ]


def _unknown_key(key: str, known: Sequence[str]) -> str:
    hint = did_you_mean(key, known)
    if not hint and known:
        hint = " (expected one of: " + ", ".join(sorted(known)) + ")"
    return f"unknown key '{key}'{hint}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def type_words(expected: str | Sequence[str]) -> str:
    """`an integer or a string`: JSON type names as words."""
    names = [expected] if isinstance(expected, str) else list(expected)
    words = [_ARTICLE.get(name, name) for name in names]
    return " or ".join(words)


_ARTICLE = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "null": "null",
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return "null"


def _show(value: Any) -> str:
    """A value as it would be written in the definition, shortened."""
    if isinstance(value, Mapping | list | tuple):
        return _kind(value)
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _got(value: Any) -> str:
    """`10 (a number)`, `a mapping`: what was found instead."""
    if isinstance(value, Mapping | list | tuple):
        return _kind(value)
    return f"{_show(value)} ({_kind(value)})"


def _yaml_hint(where: Locator, path: JSONPath, expected: str | Sequence[str]) -> str:
    """Why a scalar may not be what its author meant: how YAML read it."""
    node = where.node_at(path)
    if not isinstance(node, YamlScalar) or node.quoted:
        return ""
    wanted = {expected} if isinstance(expected, str) else set(expected)
    if "string" in wanted and not isinstance(node.value, str):
        return f' (quote it, "{node.text}", if you meant the string)'
    if "boolean" in wanted and node.text.lower() in _YAML11_BOOLEANS:
        return f" ('{node.text}' is a string in YAML 1.2: write true or false)"
    return ""
