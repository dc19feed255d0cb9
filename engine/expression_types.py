"""Static type checks of a condition: operands whose declared JSON types can never fit
their operator are errors at compile time, each at the operator's offset.

A type is a set of JSON Schema type names (`integer` is a kind of `number`); None means
unknown (a schema that does not say), which the check lets through: the evaluator then
refuses a mismatch at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .expressions import Array, Compare, Expression, Literal, Logical, Node, Not, Ref, children
from .references import Reference
from .saga_schema import type_words

Types = frozenset[str] | None
TypeOf = Callable[[Reference], Types]
"""The declared types of a reference's value, None when unknown."""

_NULL = frozenset({"null"})
_ORDERED = frozenset({"number", "string"})
_CONTAINERS = frozenset({"array", "string"})


def type_problems(expression: Expression, type_of: TypeOf) -> list[tuple[int, str]]:
    """(offset, message) for every comparison that cannot fit, in reading order."""
    return sorted(_Checker(expression, type_of).problems())


class _Checker:
    def __init__(self, expression: Expression, type_of: TypeOf) -> None:
        self.expression = expression
        self.type_of = type_of

    def problems(self) -> Iterator[tuple[int, str]]:
        stack: list[Node] = [self.expression.root]
        while stack:
            node = stack.pop()
            stack.extend(children(node))
            if isinstance(node, Compare):
                problem = self.compare(node)
                if problem is not None:
                    yield node.at, problem

    def types(self, node: Node) -> Types:
        if isinstance(node, Literal):
            return frozenset({literal_type(node.value)})
        if isinstance(node, Ref):
            return self.type_of(node.reference)
        if isinstance(node, Array):
            return frozenset({"array"})
        if isinstance(node, Not | Logical | Compare):
            return frozenset({"boolean"})
        return None  # pragma: no cover - every node kind is handled above

    def compare(self, node: Compare) -> str | None:
        left, right = self.types(node.left), self.types(node.right)
        if node.op in ("==", "!="):
            if _unknown(left, right) or left == _NULL or right == _NULL:
                return None
            if _overlap(left, right):
                return None
            return f"cannot compare {self.pair(node, left, right)}"
        if node.op == "in":
            if right is not None and not _overlap(right, _CONTAINERS):
                return "'in' needs a list or a string on its right, but " + self.described(
                    node.right, right
                )
            only_string = right is not None and not _overlap(right, {"array"})
            if only_string and left is not None and not _overlap(left, {"string"}):
                return "only a string can be in a string, but " + self.described(node.left, left)
            return None
        for side, types in ((node.left, left), (node.right, right)):
            if types is not None and not _overlap(types, _ORDERED):
                return f"'{node.op}' orders numbers or strings, but " + self.described(side, types)
        if _unknown(left, right) or _overlap(left, right):
            return None
        return f"'{node.op}' cannot compare {self.pair(node, left, right)}"

    def pair(self, node: Compare, left: Types, right: Types) -> str:
        """`a with b: one is a string, the other an integer`."""
        source = self.expression.source
        return (
            f"{source(node.left)} with {source(node.right)}: one is {_words(left)}, "
            f"the other {_words(right)}"
        )

    def described(self, node: Node, types: Types) -> str:
        return f"{self.expression.source(node)} is {_words(types)}"


def literal_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array"


def _normal(types: frozenset[str] | set[str]) -> set[str]:
    return {"number" if t == "integer" else t for t in types}


def _overlap(a: Types | set[str], b: Types | set[str]) -> bool:
    return a is not None and b is not None and bool(_normal(a) & _normal(b))


def _unknown(a: Types, b: Types) -> bool:
    return a is None or b is None


def _words(types: Types) -> str:
    return type_words(sorted(types or ()))
