"""The compiler: dependencies, every semantic check (with line:column), durations and retries."""

from __future__ import annotations

import pytest
from sagactl.engine import CompiledSaga, DefinitionErrors, RetryPolicy
from sagactl.engine.compiler import compile_definition
from sagactl.engine.durations import parse_duration


class TestDependencies:
    def test_references_and_needs(self, compile_yaml) -> None:
        """Dependencies are the referenced actions plus `needs`, and nothing else."""
        saga = compile_yaml(
            """\
            inputs: {who: {type: string}}
            actions:
              a: {uses: test.echo, with: {text: "${{ inputs.who }}"}}
              b: {uses: test.echo, with: {text: "hello ${{ actions.a.outputs.text }}!"}}
              c: {uses: test.noop, needs: [a]}
              d: {uses: test.echo, with: {text: "${{ saga.id }}"}}
            """
        )
        assert isinstance(saga, CompiledSaga)
        assert saga.edges() == (("a", "b"), ("a", "c"))
        assert saga.actions["b"].depends_on == {"a"}
        assert saga.actions["c"].needs == ("a",)
        assert saga.roots() == ("a", "d")

    def test_nested_references(self, compile_yaml) -> None:
        """References deep inside lists and mappings of `with:` count."""
        saga = compile_yaml(
            """\
            actions:
              a: {uses: test.echo, with: {text: x}}
              b: {uses: test.echo, with: {text: x}}
              c:
                uses: test.any
                with:
                  nested: {deep: ["${{ actions.a.outputs.text }}", "${{ actions.b.outputs.text }}"]}
            """
        )
        assert saga.dependencies("c") == {"a", "b"}

    def test_compiled_fields(self, compile_yaml) -> None:
        """Metadata, inputs, with, pivot and compensability reach the compiled form."""
        saga = compile_yaml(
            """\
            inputs: {n: {type: integer}}
            actions:
              a: {uses: test.count, with: {start: "${{ inputs.n }}"}, pivot: true,
                  description: counts}
              b: {uses: test.flag}
              c: {uses: test.echo, compensate: false, with: {text: x}}
            """
        )
        assert (saga.name, saga.version, saga.source.endswith("saga.yaml")) == ("demo", 1, True)
        assert saga.inputs == {"n": {"type": "integer"}}
        a = saga.actions["a"]
        assert (a.uses, dict(a.with_), a.pivot, a.description) == (
            "test.count",
            {"start": "${{ inputs.n }}"},
            True,
            "counts",
        )
        assert saga.pivots() == ("a",)
        assert saga.actions["b"].compensable is False  # the plugin has no compensation
        assert saga.actions["c"].compensable is False  # declared irreversible in YAML
        assert saga.actions["a"].compensable is True
        assert a.location is not None and (a.location.line, a.location.column) == (6, 3)

    def test_plain_data_without_locations(self, catalog) -> None:
        """A definition given as plain data compiles; its errors name the source."""
        data = {
            "apiVersion": "sagactl/v1",
            "kind": "Saga",
            "metadata": {"name": "p"},
            "actions": {"a": {"uses": "test.noop"}, "b": {"uses": "test.nope"}},
        }
        with pytest.raises(DefinitionErrors) as caught:
            compile_definition(data, catalog=catalog, source="api")
        assert (
            str(caught.value)
            == "api: actions.b.uses: unknown action 'test.nope' (did you mean 'test.noop'?)"
        )
        del data["actions"]["b"]  # type: ignore[attr-defined]
        assert compile_definition(data, catalog=catalog).name == "p"


class TestRejections:
    def test_unknown_uses(self, problems) -> None:
        """An action that is not installed is named at `uses`, with the closest match."""
        assert problems("actions:\n  a: {uses: test.ecko}\n") == [
            "5:13: actions.a.uses: unknown action 'test.ecko' (did you mean 'test.echo'?)"
        ]

    def test_unknown_uses_no_match(self, problems) -> None:
        """With no close match the error points at `sagactl actions`."""
        assert problems("actions:\n  a: {uses: zzz}\n") == [
            "5:13: actions.a.uses: unknown action 'zzz' "
            "(`sagactl actions` lists the installed ones)"
        ]

    def test_reference_to_unknown_action(self, problems) -> None:
        """A reference to an action that does not exist is located at the value."""
        found = problems(
            "actions:\n  a: {uses: test.echo, with: {text: x}}\n"
            "  b: {uses: test.echo, with: {text: '${{ actions.aa.outputs.text }}'}}\n"
        )
        assert found == ["6:37: actions.b.with.text: unknown action 'aa' (did you mean 'a'?)"]

    def test_reference_to_itself(self, problems) -> None:
        """An action cannot use its own outputs."""
        found = problems(
            "actions:\n  a: {uses: test.echo, with: {text: '${{ actions.a.outputs.text }}'}}\n"
        )
        assert found == ["5:37: actions.a.with.text: action 'a' cannot refer to its own outputs"]

    def test_undeclared_input(self, problems) -> None:
        """A reference to an input the saga does not declare is refused."""
        found = problems(
            "inputs: {name: {type: string}}\n"
            "actions:\n  a: {uses: test.echo, with: {text: 'hi ${{ inputs.nmae }}'}}\n"
        )
        assert found == ["6:37: actions.a.with.text: unknown input 'nmae' (did you mean 'name'?)"]

    def test_no_inputs_declared(self, problems) -> None:
        """Without `inputs:` every input reference is refused."""
        found = problems("actions:\n  a: {uses: test.echo, with: {text: '${{ inputs.x }}'}}\n")
        assert found == [
            "5:37: actions.a.with.text: unknown input 'x' (the saga declares no inputs)"
        ]

    def test_malformed_reference(self, problems) -> None:
        """A `${{ }}` that is no reference form is refused with the allowed forms."""
        found = problems("actions:\n  a: {uses: test.echo, with: {text: '${{ env.HOME }}'}}\n")
        assert found == [
            "5:37: actions.a.with.text: '${{ env.HOME }}' is not a reference: use inputs.NAME, "
            "actions.ACTION.outputs.NAME, saga.id, saga.name, or item, item.FIELD and index "
            "in a for_each action"
        ]

    def test_undeclared_output(self, problems) -> None:
        """A reference to an output the action's output_schema does not declare is refused."""
        found = problems(
            "actions:\n  a: {uses: test.count, with: {start: 1}}\n"
            "  b: {uses: test.echo, with: {text: '${{ actions.a.outputs.total }}'}}\n"
        )
        assert found == [
            "6:37: actions.b.with.text: action 'a' (test.count) has no output 'total' "
            "(its outputs: count)"
        ]

    def test_open_output_schema(self, compile_yaml) -> None:
        """An output schema with open additionalProperties declares any output."""
        saga = compile_yaml(
            "actions:\n  a: {uses: test.flag}\n"
            "  b: {uses: test.echo, with: {text: '${{ actions.a.outputs.anything }}'}}\n"
        )
        assert saga.dependencies("b") == {"a"}

    def test_literal_type(self, problems) -> None:
        """A literal `with:` value of the wrong type is refused at the value."""
        found = problems("actions:\n  a: {uses: test.count, with: {start: -1, label: 7}}\n")
        assert found == [
            "5:39: actions.a.with.start: must be at least 0, not -1",
            "5:50: actions.a.with.label: expected a string, got 7 (a number) "
            '(quote it, "7", if you meant the string)',
        ]

    def test_literal_enum(self, problems) -> None:
        """A literal outside the input schema's enum is refused with the closest choice."""
        found = problems("actions:\n  a: {uses: test.flag, with: {mode: fsat}}\n")
        assert found == [
            "5:37: actions.a.with.mode: 'fsat' is not one of 'fast', 'safe' (did you mean 'fast'?)"
        ]

    def test_missing_required_input(self, problems) -> None:
        """A required input missing from `with:` is named."""
        found = problems("actions:\n  a: {uses: test.count, with: {label: x}}\n")
        assert found == ["5:31: actions.a.with: missing required key 'start'"]

    def test_missing_with(self, problems) -> None:
        """Without `with:` at all the required inputs are still named."""
        found = problems("actions:\n  a:\n    uses: test.echo\n")
        assert found == ["6:5: actions.a.with: missing required key 'text'"]

    def test_unknown_input_key(self, problems) -> None:
        """A `with:` key the action does not take is refused at the key."""
        found = problems("actions:\n  a: {uses: test.echo, with: {text: x, txt: y}}\n")
        assert found == ["5:40: actions.a.with: unknown key 'txt' (did you mean 'text'?)"]

    def test_references_skip_type_checks(self, compile_yaml) -> None:
        """A reference where an integer is expected is only known at run time: accepted."""
        saga = compile_yaml(
            "inputs: {n: {type: integer}}\n"
            "actions:\n  a: {uses: test.count, with: {start: '${{ inputs.n }}'}}\n"
        )
        assert saga.actions["a"].with_["start"] == "${{ inputs.n }}"

    def test_references_keep_key_checks(self, problems) -> None:
        """Values with references still count for required and unknown keys."""
        found = problems(
            "inputs: {n: {type: integer}}\n"
            "actions:\n  a: {uses: test.count, with: {begin: '${{ inputs.n }}'}}\n"
        )
        assert found == [
            "6:31: actions.a.with: missing required key 'start'",
            "6:32: actions.a.with: unknown key 'begin' (expected one of: label, start)",
        ]

    def test_needs_unknown_and_self(self, problems) -> None:
        """`needs` naming an unknown action or the action itself is refused per entry."""
        found = problems(
            "actions:\n  a: {uses: test.noop}\n  b: {uses: test.noop, needs: [b, c]}\n"
        )
        assert found == [
            "6:32: actions.b.needs[0]: action 'b' cannot depend on itself",
            "6:35: actions.b.needs[1]: unknown action 'c'",
        ]

    def test_cycle_named(self, problems) -> None:
        """A cycle is named in full, starting at the action written first."""
        found = problems(
            """\
            actions:
              x: {uses: test.noop}
              a: {uses: test.echo, with: {text: "${{ actions.c.outputs.text }}"}}
              b: {uses: test.echo, with: {text: "${{ actions.a.outputs.text }}"}}
              c: {uses: test.echo, needs: [b], with: {text: x}}
            """
        )
        assert found == [
            "6:3: actions: dependency cycle: a -> b -> c -> a "
            "(each action waits for the one before it)"
        ]

    def test_two_cycles(self, problems) -> None:
        """Each independent cycle is reported once."""
        found = problems(
            """\
            actions:
              a: {uses: test.noop, needs: [b]}
              b: {uses: test.noop, needs: [a]}
              c: {uses: test.noop, needs: [d]}
              d: {uses: test.noop, needs: [c]}
            """
        )
        tail = " (each action waits for the one before it)"
        assert found == [
            "5:3: actions: dependency cycle: a -> b -> a" + tail,
            "7:3: actions: dependency cycle: c -> d -> c" + tail,
        ]

    def test_compensate_true_on_irreversible(self, problems) -> None:
        """`compensate: true` on an action without compensation is refused."""
        found = problems("actions:\n  a: {uses: test.flag, compensate: true}\n")
        assert found == [
            "5:36: actions.a.compensate: 'test.flag' cannot be compensated (it has no "
            "compensation step); remove `compensate: true`"
        ]

    def test_zero_timeout(self, problems) -> None:
        """A timeout of 0 is refused."""
        found = problems("actions:\n  a: {uses: test.noop, timeout: 0s}\n")
        assert found == ["5:33: actions.a.timeout: a timeout must be longer than 0 seconds"]

    def test_max_backoff_below_backoff(self, problems) -> None:
        """max_backoff shorter than backoff is refused at the retry block."""
        found = problems(
            "actions:\n  a: {uses: test.noop, retry: {backoff: 1m, max_backoff: 5s}}\n"
        )
        assert found == ["5:31: actions.a.retry: max_backoff (5s) is shorter than backoff (60s)"]

    def test_invalid_input_schema(self, problems) -> None:
        """A saga input whose schema is not a JSON Schema is refused at the bad keyword."""
        found = problems("inputs:\n  n: {type: integr}\nactions: {a: {uses: test.noop}}\n")
        assert len(found) == 1 and found[0].startswith(
            "5:13: inputs.n.type: not a valid JSON Schema"
        )

    def test_errors_sorted_across_checks(self, problems) -> None:
        """Schema, reference and literal errors come together, sorted by position."""
        found = problems(
            """\
            actions:
              b: {uses: test.count, with: {start: x}}
              a: {uses: test.echo, with: {text: "${{ actions.zz.outputs.x }}"}, pivot: 2}
            """
        )
        assert [line.split(": ")[0] for line in found] == ["5:39", "6:37", "6:76"]


class TestDurationsAndRetry:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("10m", 600.0), ("1s", 1.0), ("500ms", 0.5), ("1h30m", 5400.0), ("1.5s", 1.5), (90, 90.0)],
    )
    def test_parse_duration(self, text, seconds) -> None:
        """Durations become seconds."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["10", "m", "1x", "1h 30m", "", True, -1])
    def test_parse_duration_rejects(self, text) -> None:
        """Anything else is a ValueError."""
        with pytest.raises(ValueError):
            parse_duration(text)

    def test_defaults_and_overrides(self, compile_yaml) -> None:
        """Action timeout/retry keys override the saga defaults, which override the engine's."""
        saga = compile_yaml(
            """\
            defaults: {timeout: 10m, retry: {attempts: 5, backoff: 500ms}}
            actions:
              a: {uses: test.noop}
              b: {uses: test.noop, timeout: 1h30m, retry: {attempts: 1, max_backoff: 2s}}
            """
        )
        a, b = saga.actions["a"], saga.actions["b"]
        assert a.timeout == 600.0 and b.timeout == 5400.0
        assert a.retry == RetryPolicy(attempts=5, backoff=0.5, max_backoff=30.0, jitter=0.5)
        assert b.retry == RetryPolicy(attempts=1, backoff=0.5, max_backoff=2.0, jitter=0.5)

    def test_no_timeout(self, compile_yaml) -> None:
        """Without any timeout, an action has none."""
        assert compile_yaml("actions: {a: {uses: test.noop}}\n").actions["a"].timeout is None


class TestReferenceTypes:
    def test_input_type_mismatch(self, problems) -> None:
        """A whole-value reference to a string input cannot feed an integer input."""
        found = problems(
            "inputs: {who: {type: string}}\n"
            "actions:\n  a: {uses: test.count, with: {start: '${{ inputs.who }}'}}\n"
        )
        assert found == [
            "6:39: actions.a.with.start: expected an integer, but input 'who' is a string"
        ]

    def test_output_type_mismatch(self, problems) -> None:
        """An output declared as a string cannot feed an integer input."""
        found = problems(
            "actions:\n  a: {uses: test.echo, with: {text: x}}\n"
            "  b: {uses: test.count, with: {start: '${{ actions.a.outputs.text }}'}}\n"
        )
        assert found == [
            "6:39: actions.b.with.start: expected an integer, but output 'text' of 'a' is a string"
        ]

    def test_saga_id_is_a_string(self, problems) -> None:
        """saga.id is a string."""
        found = problems("actions:\n  a: {uses: test.count, with: {start: '${{ saga.id }}'}}\n")
        assert found == ["5:39: actions.a.with.start: expected an integer, but saga.id is a string"]

    def test_compatible_types(self, compile_yaml) -> None:
        """Matching types, integer-for-number, untyped sources and embedded references pass."""
        saga = compile_yaml(
            """\
            inputs: {n: {type: integer}, free: {}}
            actions:
              a: {uses: test.count, with: {start: "${{ inputs.n }}", label: "${{ saga.id }}"}}
              b: {uses: test.count, with: {start: "${{ inputs.free }}"}}
              c: {uses: test.count, with: {start: "${{ actions.a.outputs.count }}"}}
              d: {uses: test.echo, with: {text: "n=${{ inputs.n }}"}}
            """
        )
        assert saga.dependencies("c") == {"a"}
