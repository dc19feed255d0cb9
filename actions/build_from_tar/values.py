"""Typed reads of JSON values: inputs the schemas checked, rows the tables' types fix.

A value of the wrong type here is a bug (a schema or a table that says otherwise), so it
raises TypeError naming what was expected instead of flowing on as `Any`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagactl.engine import JSON


def text(value: JSON) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def maybe_text(value: JSON) -> str | None:
    return None if value is None else text(value)


def integer(value: JSON) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def maybe_integer(value: JSON) -> int | None:
    return None if value is None else integer(value)


def mapping(value: JSON) -> Mapping[str, Any]:
    """A JSON object; its values stay loosely typed for the code that walks them."""
    if isinstance(value, Mapping):
        return value
    raise TypeError(f"expected an object, got {type(value).__name__}")
