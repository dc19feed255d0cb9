"""What the compiler checks of the parts of a saga that park runs: its `concurrency:`
block and its `wait.signal` actions (`sagactl.engine.signals.definition_problems`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from . import references
from .model import Concurrency
from .signals import definition_problems

JSONPath = tuple[str | int, ...]
Problem = tuple[JSONPath, str]

__all__ = ["concurrency_of", "definition_problems"]


def concurrency_of(
    block: Any, inputs: Mapping[str, Any]
) -> tuple[Concurrency | None, list[Problem]]:
    """The saga's concurrency, and what is wrong with its key: a key may only hold
    references to the saga's inputs (and `saga.name`), known when the run is created."""
    if not isinstance(block, Mapping) or not isinstance(block.get("key"), str):
        return None, []  # absent, or malformed: the schema reported that
    key: str = block["key"]
    problems = list(_key_problems(key, inputs))
    limit = block.get("limit", 1)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        return None, problems  # the schema reported that
    return Concurrency(key=key, limit=limit), problems


def _key_problems(key: str, inputs: Mapping[str, Any]) -> Iterator[Problem]:
    path: JSONPath = ("concurrency", "key")
    try:
        found = list(references.in_string(key))
    except references.BadReference as exc:
        yield path, str(exc)
        return
    for ref in found:
        if ref.action is not None or ref.saga == "id":
            yield (
                path,
                (
                    f"'${{{{ {ref.text} }}}}' is not known when the run is created:"
                    " a concurrency key may refer to inputs and saga.name only"
                ),
            )
        elif ref.input is not None and ref.input not in inputs:
            yield path, f"unknown input '{ref.input}'"
