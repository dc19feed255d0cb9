"""Errors out of anyio task groups, as the one error a caller expects."""

from __future__ import annotations

from typing import Any


def unwrap(group: BaseExceptionGroup[Any]) -> BaseException:
    """The one real error inside nested task-group errors, if there is exactly one."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    return leaves[0] if len(leaves) == 1 else group
