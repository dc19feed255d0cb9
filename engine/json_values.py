"""Values that enter the run store are finite JSON, checked where they come in.

JSON has no NaN or infinity, and an integer beyond 64 bits loses its value in most JSON
readers (and costs Python quadratic time to parse). So every value the store keeps (a
compiled definition, run inputs, action outputs, checkpoints) is null, a boolean, a
string, a 64-bit integer, a finite float, or a list or string-keyed mapping of these, at
most MAX_DEPTH levels deep. The edges (YAML loader, `--input`, the Python API, the
scheduler for outputs) refuse anything else naming where it was; the stores encode with
`allow_nan=False` as the last guard.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 64
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
_INT_DIGITS = 19  # 2**63 has 19 digits: anything longer is out of range before int()


class NotJson(ValueError):
    """A value that is not finite JSON; the message names where it is and what is wrong."""


def number_problem(value: object) -> str | None:
    """Why a number cannot be stored (None when it can)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        return "integer out of range (JSON integers here are 64-bit)"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number (JSON has no NaN or infinity)"
    return None


def integer_text_problem(text: str) -> str | None:
    """Why integer text is out of range, judged before converting it (None when in range)."""
    if len(text.lstrip("+-")) > _INT_DIGITS:
        return f"integer with {len(text.lstrip('+-'))} digits is out of range (64-bit)"
    return number_problem(int(text))


def _flat_scalars(value: object) -> bool:
    """A mapping of strings to null, booleans, strings or in-range integers: finite JSON
    at a glance (most action outputs), without the walk's bookkeeping."""
    if type(value) is not dict:
        return False
    for key, inner in value.items():
        kind = type(inner)
        if type(key) is not str or not (
            inner is None
            or kind is str
            or kind is bool
            or (kind is int and INT_MIN <= inner <= INT_MAX)
        ):
            return False
    return True


def check_json(value: object, where: str) -> None:
    """Raises NotJson naming `where` and the path inside when `value` is not finite JSON."""
    if _flat_scalars(value):
        return
    todo: list[tuple[object, str, int]] = [(value, "", 0)]
    while todo:
        item, path, depth = todo.pop()  # depth: how many lists and mappings hold `item`
        if depth >= MAX_DEPTH and isinstance(item, Mapping | list | tuple):
            raise NotJson(_at(where, "", f"nested deeper than {MAX_DEPTH} levels"))
        if item is None or isinstance(item, str | bool):
            continue
        if isinstance(item, int | float):
            problem = number_problem(item)
            if problem:
                raise NotJson(_at(where, path, problem))
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise NotJson(_at(where, path, f"key {key!r} is not a string"))
                todo.append((inner, f"{path}.{key}", depth + 1))
        elif isinstance(item, list | tuple):
            todo.extend((inner, f"{path}[{i}]", depth + 1) for i, inner in enumerate(item))
        else:
            raise NotJson(_at(where, path, f"a {type(item).__name__} is not JSON"))


def _at(where: str, path: str, problem: str) -> str:
    place = f"{where}{path}".lstrip(".")
    return f"{place}: {problem}" if place else problem


def _refuse_constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON number (JSON has no NaN or infinity)")


def _parse_int(text: str) -> int:
    problem = integer_text_problem(text)
    if problem:
        raise NotJson(problem)
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotJson(f"{text} is beyond the range of a JSON number (a double)")
    return value


def parse_json(text: str) -> Any:
    """Strict JSON text to a value: NotJson for what parses but cannot be stored (NaN,
    overflowing numbers, nesting too deep), json.JSONDecodeError for what does not parse."""
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except RecursionError:
        raise NotJson(f"nested deeper than {MAX_DEPTH} levels") from None
    check_json(value, "")
    return value


_ENCODE = json.JSONEncoder(separators=(",", ":"), sort_keys=True, allow_nan=False).encode


def dumps(value: object) -> str:
    """Canonical JSON text (sorted keys, no spaces); ValueError for NaN or infinity."""
    if type(value) is Encoded:
        return value.text
    return _ENCODE(value)


class Encoded(dict[str, Any]):
    """A JSON object that carries its canonical text, encoded once: every run of a saga
    pins its compiled definition, and encoding 300 actions takes milliseconds. Treat it
    as read-only (the text would no longer match)."""

    __slots__ = ("text",)

    def __init__(self, value: Mapping[str, Any]) -> None:
        super().__init__(value)
        self.text = _ENCODE(self)


def plain_json(value: Any) -> Any:
    """`value` with read-only mappings and tuples (as compiled definitions and plugins hold
    schemas) made dicts and lists: what `json.dumps` and jsonschema take."""
    if isinstance(value, Mapping):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value
