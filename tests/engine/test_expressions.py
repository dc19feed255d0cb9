"""The condition language: parsing, precedence, evaluation, and the evaluator against a
reference model written separately from it (Hypothesis generates the expressions)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sagactl.engine.errors import InputError
from sagactl.engine.expressions import (
    MAX_DEPTH,
    Array,
    Compare,
    Expression,
    ExpressionError,
    Literal,
    Logical,
    Node,
    Not,
    Ref,
    evaluate,
    holds,
    parse_condition,
    truthy,
)
from sagactl.engine.references import Reference

EXPRESSIONS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
INPUTS = ("a", "b", "c", "d")


def run(text: str, **inputs: Any) -> Any:
    def lookup(ref: Reference) -> Any:
        if ref.input is None or ref.input not in inputs:
            raise InputError(f"input '{ref.input}' was not given")
        return inputs[ref.input]

    return evaluate(parse_condition(text), lookup)


def shape(node: Node) -> Any:
    """A node without its offsets: what two parses of one meaning share."""
    if isinstance(node, Literal):
        return ("lit", json.dumps(node.value))
    if isinstance(node, Ref):
        return ("ref", node.reference.text)
    if isinstance(node, Array):
        return ("array", *map(shape, node.items))
    if isinstance(node, Not):
        return ("!", shape(node.operand))
    if isinstance(node, Logical):
        return (node.op, *map(shape, node.operands))
    assert isinstance(node, Compare)
    return (node.op, shape(node.left), shape(node.right))


class TestParse:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "a || b && c",
                ("||", ("ref", "inputs.a"), ("&&", ("ref", "inputs.b"), ("ref", "inputs.c"))),
            ),
            (
                "a && b || c",
                ("||", ("&&", ("ref", "inputs.a"), ("ref", "inputs.b")), ("ref", "inputs.c")),
            ),
            ("!a == b", ("==", ("!", ("ref", "inputs.a")), ("ref", "inputs.b"))),
            (
                "a == b < c",
                ("==", ("ref", "inputs.a"), ("<", ("ref", "inputs.b"), ("ref", "inputs.c"))),
            ),
            (
                "a in b == c",
                ("==", ("in", ("ref", "inputs.a"), ("ref", "inputs.b")), ("ref", "inputs.c")),
            ),
            ("a || b || c", ("||", ("ref", "inputs.a"), ("ref", "inputs.b"), ("ref", "inputs.c"))),
            ("!(a || b)", ("!", ("||", ("ref", "inputs.a"), ("ref", "inputs.b")))),
            (
                "[1, 'x', [null]]",
                ("array", ("lit", "1"), ("lit", '"x"'), ("array", ("lit", "null"))),
            ),
            ("-2.5e3 == true", ("==", ("lit", "-2500.0"), ("lit", "true"))),
        ],
    )
    def test_precedence(self, text: str, expected: Any) -> None:
        """|| binds loosest, then &&, then == !=, then < <= > >= in, then !."""
        text = text.replace("a", "inputs.a").replace("b", "inputs.b").replace("c", "inputs.c")
        assert shape(parse_condition(f"${{{{ {text} }}}}").root) == expected

    def test_strings(self) -> None:
        """Double-quoted strings are JSON (with its escapes); in single quotes '' is a quote."""
        assert run(r'${{ "a\"b\u00e9\n" }}') == 'a"bé\n'
        assert run("${{ 'it''s' }}") == "it's"
        assert run("${{ '\\n' }}") == "\\n"  # no escapes in single quotes

    @pytest.mark.parametrize(
        ("text", "offset", "message"),
        [
            ("${{ 1 + 2 }}", 6, "unexpected '+'"),
            ("${{ [1, 2 }}", 10, "expected ']', found the end of the condition"),
            ("${{ 1 2 }}", 6, "expected the end of the condition, found the value 2"),
            ("${{ 'abc }}", 4, "unterminated string"),
            ('${{ "\\q" }}', 4, 'bad string "\\q": Invalid \\escape'),
            ("${{ 1.e5 }}", 4, "'1.e5' is not a JSON number"),
            ("${{ - }}", 4, "'-' is not a JSON number"),
            ("${{ 1e999 }}", 4, "1e999 is beyond the range of a number"),
            ("${{ True }}", 4, "unexpected 'True': write true"),
            ("${{ inputs.a | inputs.b }}", 13, "unexpected '|': use || for 'or'"),
            ("${{ ) }}", 4, "expected a value, found ')'"),
            ("{{ 1 }}", 0, "a condition is written as ${{ EXPRESSION }}"),
        ],
    )
    def test_errors_say_where(self, text: str, offset: int, message: str) -> None:
        with pytest.raises(ExpressionError) as caught:
            parse_condition(text)
        assert (caught.value.offset, caught.value.message[: len(message)]) == (offset, message)

    def test_nesting_is_limited(self) -> None:
        """Deep nesting is refused with a message, never a RecursionError; long flat chains
        are fine (they are one node)."""
        ok = "(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH
        assert run(f"${{{{ {ok} }}}}") == 1
        with pytest.raises(ExpressionError, match="nested deeper than 64 levels"):
            parse_condition("${{ " + "!" * (MAX_DEPTH + 1) + "true }}")
        with pytest.raises(ExpressionError, match="nested deeper"):
            parse_condition("${{ " + "[" * 5000 + "]" * 5000 + " }}")
        assert run("${{ " + " || ".join(["false"] * 5000) + " || 1 }}") is True

    def test_references_listed_with_offsets(self) -> None:
        expression = parse_condition("${{ inputs.a == actions.x.outputs.y || saga.id }}")
        assert [(r.text, at) for r, at in expression.references()] == [
            ("inputs.a", 4),
            ("actions.x.outputs.y", 16),
            ("saga.id", 39),
        ]


class TestEvaluate:
    def test_comparisons(self) -> None:
        assert run("${{ inputs.a == 1.0 }}", a=1) is True
        assert run("${{ inputs.a != null }}", a=0) is True
        assert run("${{ inputs.a == null }}", a=None) is True
        assert run("${{ inputs.a == [1, 'x'] }}", a=[1.0, "x"]) is True
        assert run("${{ inputs.a == [true] }}", a=[1]) is False  # booleans are not numbers
        assert run("${{ 'b' < 'ab' || 2 <= 1 }}") is False
        assert run("${{ 'ell' in inputs.a }}", a="hello") is True
        assert run("${{ 2 in [1, 2.0] && !(3 in []) }}") is True

    @pytest.mark.parametrize(
        ("text", "inputs", "problem"),
        [
            (
                "${{ inputs.a == 1 }}",
                {"a": "1"},
                "inputs.a == 1: cannot compare a string with a number",
            ),
            ("${{ inputs.a < 1 }}", {"a": None}, "'<' orders two numbers or two strings, not null"),
            ("${{ true > false }}", {}, "'>' orders two numbers or two strings, not a boolean"),
            (
                "${{ 1 in inputs.a }}",
                {"a": "abc"},
                "only a string can be in a string, not a number",
            ),
            ("${{ 1 in inputs.a }}", {"a": 1}, "'in' needs a list or a string on its right"),
            ("${{ inputs.zz }}", {}, "input 'zz' was not given"),
        ],
    )
    def test_type_errors_are_bad_input(
        self, text: str, inputs: dict[str, Any], problem: str
    ) -> None:
        with pytest.raises(InputError) as caught:
            run(text, **inputs)
        assert problem in str(caught.value)

    def test_short_circuit(self) -> None:
        """&& and || stop as soon as the answer is known: what follows is not evaluated."""
        assert run("${{ false && inputs.missing }}") is False
        assert run("${{ 1 || inputs.missing == 'x' }}") is True
        with pytest.raises(InputError):
            run("${{ true && inputs.missing }}")

    @pytest.mark.parametrize("value", [False, None, 0, 0.0, "", [], {}])
    def test_falsy(self, value: Any) -> None:
        assert not truthy(value)
        assert holds(parse_condition("${{ inputs.a }}"), lambda ref: value) is False

    @pytest.mark.parametrize("value", [True, 1, -0.5, "false", "0", [0], {"a": None}])
    def test_truthy(self, value: Any) -> None:
        assert truthy(value)


# -- the reference model -------------------------------------------------------------------
# A tree is ("lit", value) | ("ref", name) | ("array", items) | ("!", x) | (op, left, right);
# `render` writes it fully parenthesised or with only the parentheses precedence needs.

PRECEDENCE = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4}
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(max_size=5)
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


def trees() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        json_scalars.map(lambda v: ("lit", v)),
        st.sampled_from(INPUTS).map(lambda name: ("ref", name)),
    )

    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            inner.map(lambda x: ("!", x)),
            st.lists(inner, max_size=3).map(lambda items: ("array", items)),
            st.tuples(st.sampled_from(sorted(PRECEDENCE)), inner, inner),
        )

    return st.recursive(leaves, extend, max_leaves=12)


def render(tree: Any, minimal: bool) -> str:
    kind = tree[0]
    if kind == "lit":
        value = tree[1]
        if isinstance(value, str) and "'" not in value and minimal:
            return f"'{value}'"  # both string syntaxes get used
        return json.dumps(value)
    if kind == "ref":
        return f"inputs.{tree[1]}"
    if kind == "array":
        return "[" + ", ".join(render(item, minimal) for item in tree[1]) + "]"
    if kind == "!":
        operand = render(tree[1], minimal)
        return (
            f"!{operand}"
            if minimal and tree[1][0] in ("lit", "ref", "array", "!")
            else f"!({operand})"
        )
    op, left, right = tree
    return f"{_side(left, op, minimal, right=False)} {op} {_side(right, op, minimal, right=True)}"


def _side(tree: Any, op: str, minimal: bool, *, right: bool) -> str:
    text = render(tree, minimal)
    if not minimal:
        return f"({text})" if tree[0] in PRECEDENCE else text
    inner = PRECEDENCE.get(tree[0])
    if inner is None:
        return text
    # Comparisons never chain; && and || group to the left (right-side same level: parens).
    if inner < PRECEDENCE[op] or (inner == PRECEDENCE[op] and (right or inner >= 3)):
        return f"({text})"
    return text


class ModelTypeError(Exception):
    pass


def tag(value: Any) -> Any:
    """A JSON value as a tagged tuple: equal tags and payloads mean equal JSON values."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", value)
    if isinstance(value, str):
        return ("str", value)
    return ("list", tuple(tag(v) for v in value))


def model_truthy(value: Any) -> bool:
    return not (
        value is None or value is False or tag(value) in (("num", 0), ("str", ""), ("list", ()))
    )


def model(tree: Any, env: dict[str, Any]) -> Any:
    kind = tree[0]
    if kind == "lit":
        return tree[1]
    if kind == "ref":
        return env[tree[1]]
    if kind == "array":
        return [model(item, env) for item in tree[1]]
    if kind == "!":
        return not model_truthy(model(tree[1], env))
    op, left, right = tree
    if op == "&&":
        return model_truthy(model(left, env)) and model_truthy(model(right, env))
    if op == "||":
        return model_truthy(model(left, env)) or model_truthy(model(right, env))
    a, b = model(left, env), model(right, env)
    ta, tb = tag(a), tag(b)
    if op in ("==", "!="):
        if ta[0] != tb[0] and "null" not in (ta[0], tb[0]):
            raise ModelTypeError
        return (ta == tb) == (op == "==")
    if op == "in":
        if tb[0] == "list":
            return ta in tb[1]
        if tb[0] == "str" and ta[0] == "str":
            return a in b
        raise ModelTypeError
    if ta[0] != tb[0] or ta[0] not in ("num", "str"):
        raise ModelTypeError
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def flatten(tree: Any) -> Any:
    """The tree as the parser builds it: chains of one && or || become one node."""
    kind = tree[0]
    if kind in ("lit", "ref"):
        return ("lit", json.dumps(tree[1])) if kind == "lit" else ("ref", f"inputs.{tree[1]}")
    if kind == "array":
        return ("array", *(flatten(item) for item in tree[1]))
    if kind == "!":
        return ("!", flatten(tree[1]))
    op, left, right = tree
    if op in ("&&", "||"):
        parts = [flatten(left), flatten(right)]
        operands = [p for part in parts for p in (part[1:] if part[0] == op else (part,))]
        return (op, *operands)
    return (op, flatten(left), flatten(right))


class TestAgainstTheModel:
    @EXPRESSIONS
    @given(trees(), st.fixed_dictionaries({name: json_values for name in INPUTS}))
    def test_evaluator_matches_the_model(self, tree: Any, env: dict[str, Any]) -> None:
        """Every generated expression evaluates as the model says, or both refuse it."""
        expression = parse_condition("${{ " + render(tree, minimal=True) + " }}")
        lookup = lambda ref: env[ref.input]  # noqa: E731
        try:
            expected = model(tree, env)
        except ModelTypeError:
            with pytest.raises(InputError):
                evaluate(expression, lookup)
            return
        got = evaluate(expression, lookup)
        assert tag(got) == tag(expected) and type(got) is type(expected)

    @EXPRESSIONS
    @given(trees())
    def test_precedence_matches_the_table(self, tree: Any) -> None:
        """Written with only the parentheses precedence needs, or with all of them, an
        expression parses to the tree it was generated from."""
        minimal = parse_condition("${{ " + render(tree, minimal=True) + " }}")
        full = parse_condition("${{ " + render(tree, minimal=False) + " }}")
        expected = _shape_of(flatten(tree))
        assert _flat(shape(minimal.root)) == _flat(shape(full.root)) == expected

    @EXPRESSIONS
    @given(st.text(alphabet="inputs.ab()[]!=<>&|' \"0123456789-e,truefalsn", max_size=40))
    def test_any_text_parses_or_says_where(self, inside: str) -> None:
        """Whatever is written, the parser answers with a tree or an ExpressionError whose
        offset lies inside the text; evaluating a tree raises nothing but InputError."""
        text = "${{ " + inside + " }}"
        try:
            expression = parse_condition(text)
        except ExpressionError as exc:
            assert 0 <= exc.offset <= len(text)
            return
        try:
            value = evaluate(expression, lambda ref: 1)
        except InputError:
            return
        assert value is None or isinstance(value, bool | int | float | str | list)


def _flat(tree: Any) -> Any:
    """A shape with `(a && b) && c` and `a && (b && c)` alike: && and || associate."""
    if tree[0] in ("lit", "ref"):
        return tree
    parts = [_flat(part) for part in tree[1:]]
    if tree[0] in ("&&", "||"):
        parts = [p for part in parts for p in (part[1:] if part[0] == tree[0] else (part,))]
    return (tree[0], *parts)


def _shape_of(flat: Any) -> Any:
    """`flatten`'s tree in `shape`'s terms (literals as the parser reads them back)."""
    if flat[0] == "lit":
        return ("lit", json.dumps(json.loads(flat[1])))
    if flat[0] == "ref":
        return flat
    return (flat[0], *(_shape_of(part) for part in flat[1:]))


def test_expression_source_spans() -> None:
    """Each node's span is its own text, which error messages quote."""
    expression: Expression = parse_condition("${{ (inputs.a == 1) && [2, 'x'] }}")
    root = expression.root
    assert isinstance(root, Logical)
    assert [expression.source(n) for n in root.operands] == ["inputs.a == 1", "[2, 'x']"]
