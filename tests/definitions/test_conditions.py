"""`if: ${{ EXPR }}` in the compiler: what compiles, and every mistake at its line:column."""

from __future__ import annotations

import re
from pathlib import Path

from sagactl.engine import ActionInfo, CompiledSaga
from sagactl.engine.compiler import load_saga_file
from sagactl.engine.model import ActionSpec

from .conftest import HEADER, InfoCatalog


class TestGood:
    def test_condition_is_kept_and_its_references_are_dependencies(self, compile_yaml) -> None:
        """The `if` text reaches the compiled form; actions it refers to become dependencies,
        inputs do not."""
        saga = compile_yaml(
            """\
            inputs: {env: {type: string}, go: {type: boolean}}
            actions:
              a: {uses: test.count, with: {start: 1}}
              b:
                uses: test.noop
                if: ${{ inputs.env == "prod" && actions.a.outputs.count > 3 || !inputs.go }}
              c: {uses: test.noop, if: "${{ inputs.env in ['prod', 'stage'] }}"}
            """
        )
        b, c = saga.actions["b"], saga.actions["c"]
        assert (
            b.condition
            == '${{ inputs.env == "prod" && actions.a.outputs.count > 3 || !inputs.go }}'
        )
        assert b.depends_on == {"a"} and b.needs == ()
        assert c.condition == "${{ inputs.env in ['prod', 'stage'] }}" and c.depends_on == set()
        assert saga.edges() == (("a", "b"),)

    def test_types_that_fit(self, compile_yaml) -> None:
        """Integers compare with numbers, anything with null, strings in strings, values in
        lists, and untyped values with anything (they are checked when the saga runs)."""
        saga = compile_yaml(
            """\
            inputs: {n: {type: number}, s: {type: string}, maybe: {type: [string, "null"]}}
            actions:
              a: {uses: test.count, with: {start: 1}}
              e: {uses: test.echo, with: {text: x}}
              u: {uses: test.flag}
              b:
                uses: test.noop
                if: >-
                  ${{ actions.a.outputs.count >= inputs.n && actions.a.outputs.count != null
                  && "x" in actions.e.outputs.text && inputs.s in ["a", 1, null]
                  && actions.u.outputs.anything == 3 && inputs.maybe == "y"
                  && inputs.maybe == null && saga.name < "z" }}
            """
        )
        assert saga.actions["b"].depends_on == {"a", "e", "u"}

    def test_hash_and_round_trip(self, compile_yaml) -> None:
        """An `if` is part of the canonical hash and survives to_dict/from_dict; an action
        without one has no `if` key (older pins keep their hash)."""
        with_if = compile_yaml("actions: {a: {uses: test.noop, if: '${{ saga.id != \"\" }}'}}\n")
        without = compile_yaml("actions: {a: {uses: test.noop}}\n")
        assert with_if.canonical_hash != without.canonical_hash
        assert "if" not in without.to_dict()["actions"]["a"]
        again = CompiledSaga.from_dict(with_if.to_dict())
        assert again == with_if and again.actions["a"].condition == '${{ saga.id != "" }}'
        assert ActionSpec.from_dict(without.actions["a"].to_dict()).condition is None


class TestBad:
    def test_string_compared_with_number(self, problems) -> None:
        """The issue's example: comparing a string with a number, at the operator."""
        assert problems(
            """\
            inputs: {env: {type: string}}
            actions:
              a:
                uses: test.noop
                if: ${{ inputs.env == 3 }}
            """
        ) == [
            "8:24: actions.a.if: cannot compare inputs.env with 3: one is a string, "
            "the other an integer"
        ]

    def test_output_types_from_the_plugin_schema(self, problems) -> None:
        """An output's declared type comes from the plugin's output schema; in a quoted
        scalar the column counts the quote."""
        assert problems(
            """\
            actions:
              a: {uses: test.count, with: {start: 1}}
              b:
                uses: test.noop
                if: "${{ actions.a.outputs.count < 'ten' }}"
            """
        ) == [
            "8:38: actions.b.if: '<' cannot compare actions.a.outputs.count with 'ten': "
            "one is an integer, the other a string"
        ]

    def test_in_needs_a_list_or_a_string(self, problems) -> None:
        found = problems(
            """\
            inputs: {n: {type: integer}, s: {type: string}}
            actions:
              a: {uses: test.noop, if: "${{ 1 in inputs.n }}"}
              b: {uses: test.noop, if: "${{ inputs.n in inputs.s }}"}
            """
        )
        assert found == [
            "6:35: actions.a.if: 'in' needs a list or a string on its right, but inputs.n "
            "is an integer",
            "7:42: actions.b.if: only a string can be in a string, but inputs.n is an integer",
        ]

    def test_ordering_a_boolean(self, problems) -> None:
        assert problems(
            """\
            inputs: {go: {type: boolean}}
            actions:
              a: {uses: test.noop, if: "${{ !(inputs.go > false) }}"}
            """
        ) == [
            "6:45: actions.a.if: '>' orders numbers or strings, but inputs.go is "
            "a boolean (true or false)"
        ]

    def test_parse_errors_at_their_column(self, problems) -> None:
        found = problems(
            """\
            inputs: {x: {type: string}}
            actions:
              a:
                uses: test.noop
                if: ${{ inputs.x = "y" }}
              b: {uses: test.noop, if: "${{ (inputs.x == 'y' }}"}
              c: {uses: test.noop, if: "${{ 1 < 2 < 3 }}"}
              d: {uses: test.noop, if: "${{ inputs.x == 'y' and true }}"}
              e: {uses: test.noop, if: "${{ }}"}
            """
        )
        assert found == [
            "8:22: actions.a.if: unexpected '=': use == to compare",
            "9:50: actions.b.if: expected ')', found the end of the condition",
            "10:39: actions.c.if: comparisons do not chain: group them with ( ) or join them "
            "with &&",
            "11:49: actions.d.if: unexpected 'and': use && for 'and'",
            "12:33: actions.e.if: the condition is empty",
        ]

    def test_references_checked_as_in_with(self, problems) -> None:
        """Unknown inputs, actions and outputs, and the action's own outputs, each at the
        reference's own column."""
        found = problems(
            """\
            inputs: {env: {type: string}}
            actions:
              a: {uses: test.count, with: {start: 1}}
              b: {uses: test.noop, if: "${{ inputs.nev == 'x' }}"}
              c: {uses: test.noop, if: "${{ true && actions.zz.outputs.count }}"}
              d: {uses: test.noop, if: "${{ actions.a.outputs.cuont == 1 }}"}
              e: {uses: test.echo, with: {text: x}, if: "${{ actions.e.outputs.text }}"}
              f: {uses: test.noop, if: "${{ bogus.thing }}"}
            """
        )
        assert found == [
            "7:33: actions.b.if: unknown input 'nev' (did you mean 'env'?)",
            "8:41: actions.c.if: unknown action 'zz'",
            "9:33: actions.d.if: action 'a' (test.count) has no output 'cuont' "
            "(did you mean 'count'?)",
            "10:50: actions.e.if: action 'e' cannot refer to its own outputs",
            "11:33: actions.f.if: '${{ bogus.thing }}' is not a reference: use inputs.NAME, "
            "actions.ACTION.outputs.NAME, saga.id or saga.name",
        ]

    def test_not_written_as_an_expression(self, problems) -> None:
        """An `if` must be a string holding one `${{ }}`."""
        found = problems(
            """\
            inputs: {x: {type: string}}
            actions:
              a: {uses: test.noop, if: inputs.x == 'y'}
              b: {uses: test.noop, if: true}
            """
        )
        assert found == [
            "6:28: actions.a.if: 'inputs.x == 'y'' is not a condition written as ${{ EXPRESSION }}",
            "7:28: actions.b.if: expected a string, got true (a boolean) "
            '(quote it, "true", if you meant the string)',
        ]

    def test_folded_condition_reports_its_start(self, problems) -> None:
        """A condition folded over lines is reported where it starts (columns inside it
        would be guesses)."""
        found = problems(
            """\
            inputs: {x: {type: string}}
            actions:
              a:
                uses: test.noop
                if: >-
                  ${{ inputs.x ==
                  2 }}
            """
        )
        assert found == [
            "8:9: actions.a.if: cannot compare inputs.x with 2: one is a string, the "
            "other an integer"
        ]

    def test_condition_cycle(self, problems) -> None:
        """A reference in an `if` is a dependency like any other: cycles are named."""
        found = problems(
            """\
            actions:
              a: {uses: test.count, with: {start: 1}, if: "${{ actions.b.outputs.count > 1 }}"}
              b: {uses: test.count, with: {start: "${{ actions.a.outputs.count }}"}}
            """
        )
        assert found == [
            "5:3: actions: dependency cycle: a -> b -> a (each action waits for the one before it)"
        ]


def test_the_readme_example_compiles(tmp_path: Path) -> None:
    """The README's `if:` example is a valid definition, with the dependencies it says."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### Conditions (`if:`)") :]
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert example is not None
    typed = {"type": "object", "properties": {}}
    outputs = {
        "acme.build": {
            "type": "object",
            "properties": {
                "size": {"type": "integer"},
                "image": {"type": "string"},
                "tags": {"type": "array"},
            },
        },
        "acme.deploy": {"type": "object", "properties": {"url": {"type": "string"}}},
    }
    infos = [
        ActionInfo(name, {"type": "object"}, outputs.get(name, typed), compensable=True)
        for name in ("acme.build", "acme.deploy", "acme.notify", "acme.cleanup")
    ]
    path = tmp_path / "readme.yaml"
    path.write_text(HEADER + example.group(1))
    saga = load_saga_file(path, InfoCatalog(infos))
    assert saga.edges() == (
        ("build", "cleanup"),
        ("build", "deploy"),
        ("deploy", "announce"),
        ("deploy", "cleanup"),
    )
    assert saga.actions["cleanup"].condition is not None
