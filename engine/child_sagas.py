"""`uses: saga/NAME` at compile time: the child's definition, found and checked.

A child saga is another installed definition run as one action. To the compiler it looks
like any action: its input schema is the child's `inputs:` (so `with:` is checked as any
action's), its output schema the child's `outputs:` (so downstream references are typed),
and it is compensable unless the child has a pivot. Recursion, direct or indirect, is
found on the definitions as written (before compiling the child), so compiling a child
never recurses forever; the cycle is named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .action import ActionCatalog, ActionInfo
from .errors import DefinitionError, DefinitionErrors
from .model import CompiledSaga, plain

PREFIX = "saga/"


def child_name(uses: str) -> str | None:
    """NAME of `saga/NAME`, else None."""
    return uses[len(PREFIX) :] if uses.startswith(PREFIX) else None


class SagaLookup(Protocol):
    """Installed definitions, as the compiler needs them for child sagas."""

    def names(self) -> Sequence[str]: ...

    def children_of(self, name: str) -> Sequence[str] | None:
        """The child saga names `name` uses, read from its file without compiling it;
        None when no saga has that name."""
        ...

    def get(self, name: str) -> CompiledSaga:
        """The compiled definition; DefinitionError(s) when it cannot be had."""
        ...


def child_info(child: CompiledSaga) -> ActionInfo:
    """The child as the compiler sees an action: inputs in, outputs out."""
    properties = {name: dict(plain(schema)) for name, schema in child.inputs.items()}
    required = sorted(name for name, schema in properties.items() if "default" not in schema)
    return ActionInfo(
        name=f"{PREFIX}{child.name}",
        input_schema={
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
        output_schema=plain(child.output_schema),
        compensable=not child.pivots(),
        description=child.description,
    )


class ChildCatalog:
    """An action catalog that also knows `saga/NAME`; `problem` says why one is unusable."""

    def __init__(
        self,
        actions: ActionCatalog,
        sagas: SagaLookup | None,
        own: str | None,
        *,
        list_children: bool = False,
    ) -> None:
        """`own`: the name of the saga being compiled (None: none, as for `sagactl
        schema`); `list_children`: `names` lists every `saga/NAME` too."""
        self._actions = actions
        self._sagas = sagas
        self._own = own
        self._list_children = list_children
        self._children: dict[str, CompiledSaga | str] = {}
        """NAME -> the compiled child, or why there is none."""

    def names(self) -> Sequence[str]:
        names = list(self._actions.names())
        if self._list_children and self._sagas is not None:
            names += [f"{PREFIX}{name}" for name in self._sagas.names()]
        return names

    def info(self, name: str) -> ActionInfo | None:
        child = child_name(name)
        if child is None:
            return self._actions.info(name)
        found = self.child(child)
        return child_info(found) if isinstance(found, CompiledSaga) else None

    def child(self, name: str) -> CompiledSaga | str:
        """The compiled child, or one line saying why it cannot be used."""
        if name not in self._children:
            self._children[name] = self._find(name)
        return self._children[name]

    def problem(self, uses: str) -> str | None:
        name = child_name(uses)
        found = self.child(name) if name is not None else None
        return found if isinstance(found, str) else None

    def _find(self, name: str) -> CompiledSaga | str:
        sagas = self._sagas
        known = sagas.names() if sagas is not None else ()
        if sagas is None or sagas.children_of(name) is None:
            from .saga_schema import did_you_mean

            hint = did_you_mean(name, list(known)) or (
                f" (installed: {', '.join(known)})" if known else " (no sagas are installed)"
            )
            return f"unknown saga '{name}'{hint}"
        if self._own is not None:
            cycle = _cycle(sagas, self._own, name)
            if cycle is not None:
                return f"recursive child saga: {' -> '.join(cycle)}"
        try:
            return sagas.get(name)
        except DefinitionErrors as exc:
            first = exc.errors[0]
            more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
            return f"child saga '{name}' does not compile: {first}{more}"
        except DefinitionError as exc:
            return f"child saga '{name}' cannot be loaded: {exc}"


def _cycle(sagas: SagaLookup, own: str, start: str) -> list[str] | None:
    """`own -> start -> ... -> own` when `start` leads back to `own`, else None."""
    path = [own, start]
    seen: set[str] = set()

    def walk(name: str) -> bool:
        if name == own:
            return True
        if name in seen:
            return False
        seen.add(name)
        for child in sagas.children_of(name) or ():
            path.append(child)
            if walk(child):
                return True
            path.pop()
        return False

    return path if walk(start) else None
