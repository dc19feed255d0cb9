"""The condition language of `if: ${{ EXPR }}`: parsed once into a small tree, evaluated by
walking it, never by `eval` or any Python of the author's.

EXPR is made of references (whatever `sagactl.engine.references` parses: `inputs.X`,
`actions.A.outputs.X`, `saga.id`, ...), JSON literals (strings, numbers, `true`, `false`,
`null`, arrays `[...]`), parentheses and these operators, loosest first:

    ||            either side truthy
    &&            both sides truthy
    ==  !=        equal / not equal (never chained: `a == b == c` is an error)
    < <= > >= in  order of two numbers or two strings; `in` a list or a string
    !             not

`&&`, `||` and `!` always give a boolean and evaluate left to right, stopping as soon as
the answer is known. Values are compared as JSON, without conversion: comparing a string
with a number is an error (at compile time when the types are declared), `null` may be
compared with anything. Falsy values are `false`, `null`, `0`, `""`, `[]` and `{}`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import references
from .errors import InputError

MAX_DEPTH = 64
"""Nesting of parentheses, brackets and `!`: deeper is refused, never a RecursionError."""

_WRAPPED = re.compile(r"\s*\$\{\{(.*)\}\}\s*", re.DOTALL)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_UNTIL_DELIMITER = re.compile(r"[^\s()\[\],=!<>&|\"']+")
_SYMBOLS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",")
_LITERAL_WORDS: Mapping[str, Any] = {"true": True, "false": False, "null": None}
_MISTAKES = {
    "=": "use == to compare",
    "&": "use && for 'and'",
    "|": "use || for 'or'",
    "and": "use && for 'and'",
    "or": "use || for 'or'",
    "not": "use ! for 'not'",
    "True": "write true",
    "False": "write false",
    "None": "write null",
}
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})


class ExpressionError(ValueError):
    """A condition that does not parse; `offset` is where in its text (0-based)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# -- the tree ----------------------------------------------------------------------------
# Every node knows the span of text it came from (`start`, `end`), so an error can name it.


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Ref:
    reference: references.Reference
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Array:
    items: tuple[Node, ...]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Logical:
    """`&&` or `||` over two or more operands (flat: long chains never recurse deeply)."""

    op: str
    operands: tuple[Node, ...]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node
    at: int
    """Where the operator is written."""
    start: int
    end: int


Node = Literal | Ref | Array | Not | Logical | Compare


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed `${{ EXPR }}`: its text as written and its tree (offsets index `text`)."""

    text: str
    root: Node

    def source(self, node: Node) -> str:
        """The text `node` was parsed from."""
        return self.text[node.start : node.end]

    def references(self) -> Iterator[tuple[references.Reference, int]]:
        """Every reference in the expression, with its offset, in reading order."""
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Ref):
                yield node.reference, node.start
            else:
                stack.extend(reversed(children(node)))


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Array):
        return node.items
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, Logical):
        return node.operands
    if isinstance(node, Compare):
        return (node.left, node.right)
    return ()


# -- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    """A symbol (`==`, `(`, ...), `in`, `literal`, `ref` or `end`."""
    start: int
    end: int
    value: Any = None


def is_condition(text: str) -> bool:
    """Whether `text` is written as one `${{ ... }}` (it may still not parse)."""
    return _WRAPPED.fullmatch(text) is not None


@functools.lru_cache(maxsize=1024)
def parse_condition(text: str) -> Expression:
    """`text`, written `${{ EXPR }}`, parsed; raises `ExpressionError` saying where not."""
    match = _WRAPPED.fullmatch(text)
    if match is None:
        raise ExpressionError("a condition is written as ${{ EXPRESSION }}", 0)
    tokens = list(_tokens(text, match.start(1), match.end(1)))
    parser = _Parser(tokens)
    if tokens[0].kind == "end":
        raise ExpressionError("the condition is empty", tokens[0].start)
    root = parser.or_expr(0)
    parser.expect("end")
    return Expression(text, root)


def _tokens(text: str, start: int, end: int) -> Iterator[_Token]:
    at = start
    while True:
        while at < end and text[at].isspace():
            at += 1
        if at >= end:
            yield _Token("end", end, end)
            return
        char = text[at]
        symbol = next((s for s in _SYMBOLS if text.startswith(s, at) and at + len(s) <= end), None)
        if symbol is not None:
            yield _Token(symbol, at, at + len(symbol))
            at += len(symbol)
        elif char in "\"'":
            token = _string(text, at, end)
            yield token
            at = token.end
        elif char == "-" or char.isdigit():
            match = _NUMBER.match(text, at, end)
            stop = match.end() if match else at + 1
            if match is None or (stop < end and (text[stop].isalnum() or text[stop] in "_.")):
                bad = _UNTIL_DELIMITER.match(text, at, end)
                shown = bad.group() if bad else char
                raise ExpressionError(f"'{shown}' is not a JSON number", at)
            number = float(match.group()) if set(".eE") & set(match.group()) else int(match.group())
            if isinstance(number, float) and number in (float("inf"), float("-inf")):
                raise ExpressionError(f"{match.group()} is beyond the range of a number", at)
            yield _Token("literal", at, stop, number)
            at = stop
        elif (word := _WORD.match(text, at, end)) is not None:
            yield _word(word.group(), at)
            at = word.end()
        else:
            hint = _MISTAKES.get(char)
            message = f"unexpected '{char}'" + (f": {hint}" if hint else "")
            raise ExpressionError(message, at)


def _string(text: str, start: int, end: int) -> _Token:
    """A JSON string in double quotes, or a single-quoted one where '' is a quote."""
    quote, at = text[start], start + 1
    while at < end:
        if text[at] == "\\" and quote == '"':
            at += 2
            continue
        if text[at] == quote:
            if quote == "'" and text.startswith("''", at):
                at += 2
                continue
            raw = text[start : at + 1]
            if quote == "'":
                return _Token("literal", start, at + 1, raw[1:-1].replace("''", "'"))
            try:
                return _Token("literal", start, at + 1, json.loads(raw))
            except ValueError as exc:
                raise ExpressionError(f"bad string {raw}: {exc.args[0]}", start) from None
        at += 1
    raise ExpressionError("unterminated string", start)


def _word(word: str, at: int) -> _Token:
    stop = at + len(word)
    if word in _LITERAL_WORDS:
        return _Token("literal", at, stop, _LITERAL_WORDS[word])
    if word == "in":
        return _Token("in", at, stop)
    if word in _MISTAKES:
        raise ExpressionError(f"unexpected '{word}': {_MISTAKES[word]}", at)
    try:
        return _Token("ref", at, stop, references.parse(word))
    except references.BadReference as exc:
        raise ExpressionError(str(exc), at) from None


class _Parser:
    """Recursive descent, one function per precedence level (see the module's table)."""

    def __init__(self, tokens: Sequence[_Token]) -> None:
        self.tokens = tokens
        self.at = 0

    @property
    def next(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, kind: str) -> _Token:
        token = self.next
        if token.kind != kind:
            wanted = "the end of the condition" if kind == "end" else f"'{kind}'"
            raise ExpressionError(f"expected {wanted}, found {_describe(token)}", token.start)
        return self.take()

    def or_expr(self, depth: int) -> Node:
        return self.logical("||", self.and_expr, depth)

    def and_expr(self, depth: int) -> Node:
        return self.logical("&&", self.equality, depth)

    def logical(self, op: str, operand: Callable[[int], Node], depth: int) -> Node:
        operands = [operand(depth)]
        while self.next.kind == op:
            self.take()
            operands.append(operand(depth))
        if len(operands) == 1:
            return operands[0]
        return Logical(op, tuple(operands), operands[0].start, operands[-1].end)

    def equality(self, depth: int) -> Node:
        return self.comparison(("==", "!="), self.relation, depth)

    def relation(self, depth: int) -> Node:
        return self.comparison(("<", "<=", ">", ">=", "in"), self.unary, depth)

    def comparison(self, ops: tuple[str, ...], operand: Callable[[int], Node], depth: int) -> Node:
        left = operand(depth)
        if self.next.kind not in ops:
            return left
        op = self.take()
        right = operand(depth)
        if self.next.kind in ops:
            raise ExpressionError(
                "comparisons do not chain: group them with ( ) or join them with &&",
                self.next.start,
            )
        return Compare(op.kind, left, right, op.start, left.start, right.end)

    def unary(self, depth: int) -> Node:
        if self.next.kind != "!":
            return self.primary(depth)
        bang = self.take()
        operand = self.unary(self.deeper(depth, bang))
        return Not(operand, bang.start, operand.end)

    def primary(self, depth: int) -> Node:
        token = self.take()
        if token.kind == "literal":
            return Literal(token.value, token.start, token.end)
        if token.kind == "ref":
            return Ref(token.value, token.start, token.end)
        if token.kind == "(":
            inner = self.or_expr(self.deeper(depth, token))
            self.expect(")")
            return inner
        if token.kind == "[":
            return self.array(token, self.deeper(depth, token))
        raise ExpressionError(f"expected a value, found {_describe(token)}", token.start)

    def array(self, opening: _Token, depth: int) -> Node:
        items: list[Node] = []
        if self.next.kind != "]":
            items.append(self.or_expr(depth))
            while self.next.kind == ",":
                self.take()
                items.append(self.or_expr(depth))
        closing = self.expect("]")
        return Array(tuple(items), opening.start, closing.end)

    @staticmethod
    def deeper(depth: int, token: _Token) -> int:
        if depth + 1 > MAX_DEPTH:
            raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels", token.start)
        return depth + 1


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the condition"
    if token.kind == "literal":
        return f"the value {json.dumps(token.value)}"
    if token.kind == "ref":
        return f"the reference {token.value.text}"
    return f"'{token.kind}'"


# -- evaluation ------------------------------------------------------------------------

Lookup = Callable[[references.Reference], Any]
"""The value of a reference in the run (raises `InputError` when it has none)."""


def evaluate(expression: Expression, lookup: Lookup) -> Any:
    """The expression's value; raises `InputError` on a type error or a missing value."""
    return _value(expression, expression.root, lookup)


def holds(expression: Expression, lookup: Lookup) -> bool:
    """Whether the condition is true (its value is truthy)."""
    return truthy(evaluate(expression, lookup))


def truthy(value: Any) -> bool:
    """False for false, null, 0, "", [] and {}; true for every other JSON value."""
    if value is None or value is False:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float | str | list | tuple | Mapping):
        return bool(value)
    return True


def kind_of(value: Any) -> str:
    """The JSON type of a value: null, boolean, number, string, array or object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: numbers by value (1 == 1.0), booleans are not numbers."""
    kind = kind_of(a)
    if kind != kind_of(b):
        return False
    if kind == "array":
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if kind == "object":
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _value(expression: Expression, node: Node, lookup: Lookup) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ref):
        return lookup(node.reference)
    if isinstance(node, Array):
        return [_value(expression, item, lookup) for item in node.items]
    if isinstance(node, Not):
        return not truthy(_value(expression, node.operand, lookup))
    if isinstance(node, Logical):
        decisive = node.op == "||"  # || is decided by a truthy operand, && by a falsy one
        for item in node.operands:
            if truthy(_value(expression, item, lookup)) is decisive:
                return decisive
        return not decisive
    left = _value(expression, node.left, lookup)
    right = _value(expression, node.right, lookup)
    return _compare(expression, node, left, right)


def _compare(expression: Expression, node: Compare, left: Any, right: Any) -> bool:
    op = node.op
    lk, rk = kind_of(left), kind_of(right)
    if op in ("==", "!="):
        if lk != rk and "null" not in (lk, rk):
            raise _type_error(expression, node, f"cannot compare {_a(lk)} with {_a(rk)}")
        return json_equal(left, right) is (op == "==")
    if op == "in":
        if rk == "array":
            return any(json_equal(left, item) for item in right)
        if rk == "string" and lk == "string":
            return left in right
        if rk == "string":
            raise _type_error(expression, node, f"only a string can be in a string, not {_a(lk)}")
        problem = f"'in' needs a list or a string on its right, not {_a(rk)}"
        raise _type_error(expression, node, problem)
    if lk != rk or lk not in ("number", "string"):
        raise _type_error(
            expression, node, f"'{op}' orders two numbers or two strings, not {_a(lk)} and {_a(rk)}"
        )
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _type_error(expression: Expression, node: Compare, problem: str) -> InputError:
    return InputError(f"condition {expression.text.strip()}: {expression.source(node)}: {problem}")


def _a(kind: str) -> str:
    return {"null": "null", "array": "a list", "object": "a mapping"}.get(kind, f"a {kind}")
