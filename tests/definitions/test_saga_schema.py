"""The sagactl/v1 JSON Schema: what it rejects, where, in whose words; and the folded schema."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from jsonschema import Draft202012Validator
from sagactl.engine.saga_schema import base_schema, schema_with_actions, validate_definition
from sagactl.engine.yaml_loader import load_yaml

MINIMAL = """\
apiVersion: sagactl/v1
kind: Saga
metadata: {name: demo}
actions:
  a: {uses: test.noop}
"""


class TestSchemaFile:
    def test_is_valid_draft_2020_12(self) -> None:
        """The shipped schema is itself a valid Draft 2020-12 schema."""
        schema = base_schema()
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)

    def test_shipped_as_package_data(self) -> None:
        """The schema file is installed inside sagactl.engine, where editors can point at it."""
        text = resources.files("sagactl.engine").joinpath("saga.schema.json").read_text()
        assert json.loads(text) == base_schema()

    def test_minimal_definition_is_valid(self, write) -> None:
        """A definition with only the required keys passes."""
        document = load_yaml(write(MINIMAL))
        assert validate_definition(document.data, document) == []


class TestValidationErrors:
    def test_unknown_key_did_you_mean(self, problems) -> None:
        """A misspelt key is named with its closest known key, at the key itself."""
        found = problems(
            """\
            actions:
              load_config:
                uses: test.echo
                wiht: {text: hi}
            """
        )
        assert found == ["7:5: actions.load_config: unknown key 'wiht' (did you mean 'with'?)"]

    def test_unknown_key_lists_choices(self, problems) -> None:
        """An unknown key with no close match lists the keys allowed there."""
        found = problems("defaults: {colour: red}\nactions: {a: {uses: test.noop}}\n")
        assert found == ["4:12: defaults: unknown key 'colour' (expected one of: retry, timeout)"]

    def test_unknown_top_level_key(self, problems) -> None:
        """Unknown keys at the top level are located too."""
        found = problems("actoins: {}\nactions: {a: {uses: test.noop}}\n")
        assert found == ["4:1: unknown key 'actoins' (did you mean 'actions'?)"]

    def test_missing_keys(self, problems) -> None:
        """Missing required keys are named at the mapping that lacks them."""
        found = problems("metadata:\n  description: x\nactions:\n  a: {needs: []}\n", header=False)
        assert found == [
            "1:1: missing required keys 'apiVersion', 'kind'",
            "2:3: metadata: missing required key 'name'",
            "4:6: actions.a: missing required key 'uses'",
        ]

    def test_wrong_api_version_and_kind(self, problems) -> None:
        """apiVersion and kind must be exactly sagactl/v1 and Saga."""
        found = problems(
            "apiVersion: sagactl/v2\nkind: Job\nmetadata: {name: x}\n"
            "actions: {a: {uses: test.noop}}\n",
            header=False,
        )
        assert found == [
            "1:13: apiVersion: must be 'sagactl/v1', not 'sagactl/v2' (a string)",
            "2:7: kind: must be 'Saga', not 'Job' (a string)",
        ]

    def test_top_level_not_a_mapping(self, problems) -> None:
        """A file holding a list is told it must be a mapping."""
        assert problems("- a\n- b\n", header=False) == ["1:1: expected a mapping, got a list"]

    def test_empty_actions(self, problems) -> None:
        """A saga without actions is refused at `actions`."""
        assert problems("actions: {}\n") == ["4:10: actions: must have at least one entry"]

    def test_unquoted_number_for_string(self, problems) -> None:
        """A number where a string is expected says how to get the string."""
        found = problems("actions:\n  a: {uses: test.noop, description: 1.10}\n")
        assert found == [
            "5:37: actions.a.description: expected a string, got 1.1 (a number) "
            '(quote it, "1.10", if you meant the string)'
        ]

    def test_yaml11_boolean_word(self, problems) -> None:
        """`pivot: yes` is a string in YAML 1.2; the error says to write true."""
        found = problems("actions:\n  a:\n    uses: test.noop\n    pivot: yes\n")
        assert found == [
            "7:12: actions.a.pivot: expected a boolean (true or false), got 'yes' (a string) "
            "('yes' is a string in YAML 1.2: write true or false)"
        ]

    def test_bad_duration(self, problems) -> None:
        """A malformed duration is explained with examples."""
        found = problems("defaults: {timeout: 10 minutes}\nactions: {a: {uses: test.noop}}\n")
        assert found == [
            "4:21: defaults.timeout: '10 minutes' is not a duration "
            "(seconds, or e.g. 500ms, 10s, 10m, 1h30m, 7d)"
        ]

    def test_negative_duration(self, problems) -> None:
        """A negative number of seconds is refused."""
        found = problems("actions: {a: {uses: test.noop, timeout: -5}}\n")
        assert found == ["4:41: actions.a.timeout: must be at least 0, not -5"]

    def test_bad_action_name(self, problems) -> None:
        """An action name that references could not name is refused at the key."""
        found = problems("actions:\n  load config: {uses: test.noop}\n")
        assert found == [
            "5:3: actions: 'load config' is not a valid name (letters, digits, '_' and '-', "
            "starting with a letter or '_')"
        ]

    def test_bad_saga_name(self, problems) -> None:
        """metadata.name must be a lower-case name."""
        found = problems(
            "apiVersion: sagactl/v1\nkind: Saga\nmetadata: {name: My Saga}\n"
            "actions: {a: {uses: test.noop}}\n",
            header=False,
        )
        assert found[0].startswith("3:18: metadata.name: 'My Saga' is not a valid saga name")

    def test_retry_bounds(self, problems) -> None:
        """Retry attempts and jitter are bounded."""
        found = problems(
            "defaults: {retry: {attempts: 0, jitter: 2}}\nactions: {a: {uses: test.noop}}\n"
        )
        assert found == [
            "4:30: defaults.retry.attempts: must be at least 1, not 0",
            "4:41: defaults.retry.jitter: must be at most 1, not 2",
        ]

    def test_needs_listed_twice(self, problems) -> None:
        """An action named twice in `needs` is pointed at."""
        found = problems(
            "actions:\n  a: {uses: test.noop}\n  b: {uses: test.noop, needs: [a, a]}\n"
        )
        assert found == ["6:35: actions.b.needs[1]: 'a' is listed twice"]

    def test_every_error_in_one_pass(self, problems) -> None:
        """Several problems in one file are all reported, in file order."""
        found = problems(
            """\
            actions:
              a: {uses: test.noop, pivot: 1}
              b: {uses: test.noop, retry: {attempts: many}}
              c: {use: test.noop}
            """
        )
        assert [line.split(": ")[0] for line in found] == ["5:31", "6:42", "7:6", "7:7"]


class TestFoldedSchema:
    def test_valid_schema_with_action_rules(self, catalog) -> None:
        """The folded schema is valid and has one if/then per installed action."""
        schema = schema_with_actions(catalog)
        Draft202012Validator.check_schema(schema)
        rules = schema["$defs"]["action"]["allOf"]
        assert [rule["if"]["properties"]["uses"]["const"] for rule in rules] == list(
            catalog.names()
        )
        assert schema["$defs"]["action"]["properties"]["uses"]["anyOf"][0]["enum"] == list(
            catalog.names()
        )

    def test_checks_with_blocks(self, catalog, write) -> None:
        """An editor using the folded schema flags a wrong literal type in `with:`."""
        validator = Draft202012Validator(schema_with_actions(catalog))
        good = load_yaml(write(MINIMAL + "  b: {uses: test.count, with: {start: 3}}\n")).data
        bad = load_yaml(write(MINIMAL + "  b: {uses: test.count, with: {start: x}}\n")).data
        assert list(validator.iter_errors(good)) == []
        assert [list(e.absolute_path) for e in validator.iter_errors(bad)] == [
            ["actions", "b", "with", "start"]
        ]

    def test_accepts_references(self, catalog, write) -> None:
        """A reference where an integer is expected is fine for the editor."""
        validator = Draft202012Validator(schema_with_actions(catalog))
        text = MINIMAL + "  b: {uses: test.count, with: {start: '${{ actions.a.outputs.n }}'}}\n"
        assert list(validator.iter_errors(load_yaml(write(text)).data)) == []

    def test_unknown_with_key_flagged(self, catalog, write) -> None:
        """The folded schema keeps each action's closed `with:` keys."""
        validator = Draft202012Validator(schema_with_actions(catalog))
        text = MINIMAL + "  b: {uses: test.echo, with: {text: hi, txet: hi}}\n"
        assert len(list(validator.iter_errors(load_yaml(write(text)).data))) == 1

    @pytest.mark.parametrize("names", [[]])
    def test_no_actions_installed(self, names) -> None:
        """With nothing installed the folded schema is the shipped one."""

        class Empty:
            def info(self, name):
                return None

            def names(self):
                return names

        assert schema_with_actions(Empty()) == base_schema()
