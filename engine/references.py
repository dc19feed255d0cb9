"""`${{ ... }}` references in `with:` values: found, checked and looked up, never evaluated."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError

_REF = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(
    r"^(?:inputs\.(?P<input>[A-Za-z_][A-Za-z0-9_-]*)"
    r"|actions\.(?P<action>[A-Za-z_][A-Za-z0-9_-]*)\.outputs\.(?P<output>[A-Za-z_][A-Za-z0-9_-]*)"
    r"|saga\.(?P<saga>id|name)"
    r"|(?P<item>item(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)"
    r"|(?P<index>index))$"
)


@dataclass(frozen=True, slots=True)
class Reference:
    """One parsed reference. Exactly one of `input`, `action`, `saga`, `item` or `index`
    is set (`item` and `index` are the element of a `for_each` action)."""

    text: str
    input: str | None = None
    action: str | None = None
    output: str | None = None
    saga: str | None = None
    item: tuple[str, ...] | None = None
    """The element's field path: () for the element itself."""
    index: bool = False
    element: bool = dataclasses.field(init=False, compare=False, repr=False)
    """Refers to the current `for_each` element (`item...` or `index`); a field, not a
    property: it is asked at every lookup of every action."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", self.item is not None or self.index)


class BadReference(ValueError):
    """A `${{ }}` whose inside is not one of the reference forms."""


# Parsed per string, not per use: resolving runs for every action of every run (the
# results are immutable, so sharing them is safe).
@functools.lru_cache(maxsize=4096)
def parse(expression: str) -> Reference:
    match = _PATH.match(expression)
    if match is None:
        raise BadReference(
            f"'${{{{ {expression} }}}}' is not a reference: use inputs.NAME, "
            "actions.ACTION.outputs.NAME, saga.id, saga.name, or item, item.FIELD and "
            "index in a for_each action"
        )
    item = match["item"]
    return Reference(
        text=expression,
        input=match["input"],
        action=match["action"],
        output=match["output"],
        saga=match["saga"],
        item=tuple(item.split(".")[1:]) if item is not None else None,
        index=match["index"] is not None,
    )


@functools.lru_cache(maxsize=4096)
def whole(value: str) -> Reference | None:
    """The reference when `value` is exactly one reference (it then keeps its JSON type)."""
    match = _REF.fullmatch(value.strip())
    return parse(match.group(1)) if match else None


def whole_references(value: Any) -> tuple[tuple[str, Reference], ...] | None:
    """A mapping's keys with their references, when each of its values is exactly one
    reference (most `with:` blocks): resolving it is then looking each one up, as
    `resolve` would. None for anything else (`resolve` it)."""
    if not isinstance(value, Mapping):
        return None
    found = []
    for key, item in value.items():
        try:
            ref = whole(item) if isinstance(item, str) else None
        except BadReference:
            return None  # (`resolve` raises it where it is used)
        if ref is None:
            return None
        found.append((key, ref))
    return tuple(found)


def in_string(value: str) -> Iterator[Reference]:
    for match in _REF.finditer(value):
        yield parse(match.group(1))


def walk(value: Any) -> Iterator[Reference]:
    """Every reference anywhere inside a `with:` value."""
    if isinstance(value, str):
        yield from in_string(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from walk(item)


@dataclass(frozen=True, slots=True)
class Scope:
    """What references resolve against while a run executes."""

    run_id: str
    saga: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Mapping[str, Any]]
    element: tuple[int, Any] | None = None
    """(index, item) of the `for_each` element being resolved for, if any."""

    def lookup(self, ref: Reference) -> Any:
        if ref.element:
            return self._element(ref)
        if ref.input is not None:
            if ref.input not in self.inputs:
                raise InputError(f"input '{ref.input}' was not given")
            return self.inputs[ref.input]
        if ref.action is not None:
            outputs = self.outputs.get(ref.action)
            if outputs is None or ref.output is None or ref.output not in outputs:
                raise InputError(f"action '{ref.action}' has no output '{ref.output}'")
            return outputs[ref.output]
        return self.run_id if ref.saga == "id" else self.saga

    def _element(self, ref: Reference) -> Any:
        if self.element is None:
            raise InputError(f"'${{{{ {ref.text} }}}}' is only usable in a for_each action")
        index, value = self.element
        if ref.index:
            return index
        for depth, field in enumerate(ref.item or ()):
            if not isinstance(value, Mapping) or field not in value:
                where = ".".join(("item", *(ref.item or ())[:depth]))
                raise InputError(f"{where} has no field '{field}'")
            value = value[field]
        return value


def resolve(value: Any, scope: Scope) -> Any:
    """`value` with every reference replaced; a whole-string reference keeps its type."""
    if isinstance(value, str):
        ref = whole(value)
        if ref is not None:
            return scope.lookup(ref)
        return _REF.sub(lambda m: _as_text(scope.lookup(parse(m.group(1)))), value)
    if type(value) is dict or isinstance(value, Mapping):  # (a dict skips the ABC check)
        return {key: resolve(item, scope) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item, scope) for item in value]
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)
