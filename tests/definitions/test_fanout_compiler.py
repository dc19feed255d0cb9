"""The compiler on `for_each`: what compiles, and every mistake with its line:column."""

from __future__ import annotations

from sagactl.engine import CompiledSaga

TARGETS = """\
inputs:
  targets:
    type: array
    items: {type: object, properties: {host: {type: string}, port: {type: integer}}}
  names: {type: array, items: {type: string}}
  one: {type: string}
"""


class TestGood:
    def test_for_each_compiles(self, compile_yaml) -> None:
        """for_each, item fields, index and max_parallel reach the compiled form, and the
        referenced action becomes a dependency."""
        saga: CompiledSaga = compile_yaml(
            TARGETS
            + """\
            actions:
              each:
                uses: test.count
                for_each: ${{ inputs.targets }}
                max_parallel: 4
                with: {start: "${{ item.port }}", label: "${{ item.host }}#${{ index }}"}
              again:
                uses: test.echo
                for_each: ${{ actions.each.outputs.results }}
                with: {text: "${{ item.count }}#${{ index }}"}
            """.replace("            ", "")
        )
        each = saga.actions["each"]
        assert (each.for_each, each.max_parallel) == ("${{ inputs.targets }}", 4)
        assert saga.actions["again"].depends_on == {"each"}
        assert CompiledSaga.from_dict(saga.to_dict()) == saga
        assert saga.to_dict()["actions"]["each"]["for_each"] == "${{ inputs.targets }}"

    def test_results_feed_an_array_input(self, compile_yaml) -> None:
        """Downstream, a fan-out's `results` is an array: it feeds an array and a for_each."""
        saga = compile_yaml(
            TARGETS
            + """\
            actions:
              each: {uses: test.echo, for_each: "${{ inputs.names }}", with: {text: "${{ item }}"}}
              plain: {uses: test.echo, with: {text: x}}
              next:
                uses: test.echo
                for_each: ${{ actions.each.outputs.results }}
                with: {text: "${{ item.text }}"}
            """.replace("            ", "")
        )
        assert saga.dependencies("next") == {"each"}
        assert "for_each" not in saga.to_dict()["actions"]["plain"]


class TestBad:
    def test_for_each_over_a_non_array(self, problems) -> None:
        assert problems(
            TARGETS
            + """\
            actions:
              a: {uses: test.count, with: {start: 1}}
              b: {uses: test.echo, for_each: "${{ inputs.one }}", with: {text: x}}
              c: {uses: test.echo, for_each: "${{ actions.a.outputs.count }}", with: {text: x}}
              d: {uses: test.echo, for_each: "${{ saga.id }}", with: {text: x}}
            """.replace("            ", "")
        ) == [
            "12:34: actions.b.for_each: for_each needs an array, but input 'one' is a string",
            "13:34: actions.c.for_each: for_each needs an array, but output 'count' of 'a' "
            "is an integer",
            "14:34: actions.d.for_each: for_each needs an array, but saga.id is a string",
        ]

    def test_for_each_not_one_reference(self, problems) -> None:
        found = problems(
            """\
            actions:
              a: {uses: test.echo, for_each: "[1, 2]", with: {text: x}}
              b: {uses: test.echo, for_each: "${{ inputs.nope }}", with: {text: x}}
              c: {uses: test.echo, for_each: "${{ item }}", with: {text: x}}
              d: {uses: test.echo, for_each: "${{ bogus }}", with: {text: x}}
            """
        )
        assert found[0] == (
            "5:34: actions.a.for_each: '[1, 2]' is not one reference to an array, "
            "e.g. ${{ inputs.targets }}"
        )
        assert found[1] == (
            "6:34: actions.b.for_each: unknown input 'nope' (the saga declares no inputs)"
        )
        assert found[2] == "7:34: actions.c.for_each: for_each cannot iterate over its own 'item'"
        assert found[3].startswith("8:34: actions.d.for_each: '${{ bogus }}' is not a reference")
        assert len(found) == 4

    def test_item_and_index_outside_for_each(self, problems) -> None:
        assert problems(
            """\
            actions:
              a: {uses: test.echo, with: {text: "${{ item }}"}}
              b: {uses: test.count, with: {start: "${{ index }}"}}
              c: {uses: test.echo, with: {text: "at ${{ item.host }}"}}
            """
        ) == [
            "5:37: actions.a.with.text: '${{ item }}' is only usable in an action with for_each",
            "6:39: actions.b.with.start: '${{ index }}' is only usable in an action with for_each",
            "7:37: actions.c.with.text: '${{ item.host }}' is only usable in an action with "
            "for_each",
        ]

    def test_item_fields_checked_against_items(self, problems) -> None:
        assert problems(
            TARGETS
            + """\
            actions:
              a:
                uses: test.count
                for_each: ${{ inputs.targets }}
                with: {start: "${{ item.hots }}", label: "${{ item.port.x }}"}
              b:
                uses: test.count
                for_each: ${{ inputs.targets }}
                with: {start: "${{ item.host }}"}
              c: {uses: test.echo, for_each: "${{ inputs.names }}", with: {text: "${{ item.x }}"}}
            """.replace("            ", "")
        ) == [
            "14:19: actions.a.with.start: item has no field 'hots' (its fields: host, port)",
            "14:46: actions.a.with.label: item.port is an integer: it has no field 'x'",
            "18:19: actions.b.with.start: expected an integer, but item.host is a string",
            "19:70: actions.c.with.text: item is a string: it has no field 'x'",
        ]

    def test_results_is_the_only_output_and_an_array(self, problems) -> None:
        assert problems(
            TARGETS
            + """\
            actions:
              a: {uses: test.echo, for_each: "${{ inputs.names }}", with: {text: "${{ item }}"}}
              b: {uses: test.echo, with: {text: "${{ actions.a.outputs.text }}"}}
              c: {uses: test.echo, with: {text: "${{ actions.a.outputs.results }}"}}
            """.replace("            ", "")
        ) == [
            "12:37: actions.b.with.text: action 'a' runs for_each: its one output is "
            "'results' (the list of each element's outputs), not 'text'",
            "13:37: actions.c.with.text: expected a string, but output 'results' of 'a' is a list",
        ]

    def test_max_parallel(self, problems) -> None:
        found = problems(
            TARGETS
            + """\
            actions:
              a: {uses: test.echo, max_parallel: 2, with: {text: x}}
              b: {uses: test.echo, for_each: "${{ inputs.names }}", max_parallel: 0,
                  with: {text: x}}
            """.replace("            ", "")
        )
        assert found == [
            "11:38: actions.a.max_parallel: max_parallel limits the elements of a for_each, "
            "and this action has none",
            "12:71: actions.b.max_parallel: must be at least 1, not 0",
        ]
