"""The compiler on `wait.signal` actions and a saga's `concurrency:` block, good and bad,
each mistake at its line:column."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from sagactl.engine import CompiledSaga, DefinitionError, DefinitionErrors
from sagactl.engine.compiler import load_saga_file
from sagactl.engine.model import Concurrency
from sagactl.engine.plugins import load_plugins

from .conftest import HEADER, TEST_ACTIONS, InfoCatalog


@pytest.fixture(scope="module")
def catalog() -> InfoCatalog:
    """The test actions and the installed `wait.signal`, as the plugin registry has it."""
    wait = load_plugins().actions.info("wait.signal")
    assert wait is not None, "wait.signal is an entry point of sagactl itself"
    return InfoCatalog([*TEST_ACTIONS, wait])


def _path(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "saga.yaml"
    path.write_text(HEADER + textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def compiled(tmp_path: Path, catalog: InfoCatalog) -> Callable[[str], CompiledSaga]:
    return lambda text: load_saga_file(_path(tmp_path, text), catalog)


@pytest.fixture
def problems(tmp_path: Path, catalog: InfoCatalog) -> Callable[[str], list[str]]:
    def _problems(text: str) -> list[str]:
        with pytest.raises(DefinitionError) as caught:
            load_saga_file(_path(tmp_path, text), catalog)
        error = caught.value
        found = error.errors if isinstance(error, DefinitionErrors) else [error]
        assert all(item.location is not None for item in found)
        return [f"{e.location.line}:{e.location.column}: {e.message}" for e in found]  # type: ignore[union-attr]

    return _problems


class TestWaitSignal:
    def test_an_approval_step_compiles(self, compiled: Callable[[str], CompiledSaga]) -> None:
        saga = compiled(
            """\
            actions:
              build: {uses: test.noop}
              approve:
                uses: wait.signal
                needs: [build]
                with:
                  name: approve
                  timeout: 24h
                  schema: {type: object, required: [by], properties: {by: {type: string}}}
              deploy: {uses: test.any, with: {who: "${{ actions.approve.outputs.data }}"}}
            """
        )
        assert saga.edges() == (("approve", "deploy"), ("build", "approve"))
        assert saga.actions["approve"].with_["timeout"] == "24h"
        assert not saga.actions["approve"].compensable  # nothing to undo in a wait

    def test_an_invalid_signal_schema_is_located(
        self, problems: Callable[[str], list[str]]
    ) -> None:
        assert problems(
            """\
            actions:
              approve:
                uses: wait.signal
                with:
                  name: approve
                  schema:
                    type: object
                    properties:
                      by: {type: strnig}
            """
        ) == [
            "12:22: actions.approve.with.schema.properties.by.type: not a valid JSON Schema:"
            " 'strnig' is not valid under any of the given schemas"
        ]

    def test_a_signal_schema_of_the_wrong_kind(self, problems: Callable[[str], list[str]]) -> None:
        found = problems(
            """\
            actions:
              approve: {uses: wait.signal, with: {name: approve, schema: [1]}}
            """
        )
        assert found == [
            "5:62: actions.approve.with.schema: expected a mapping or a boolean (true or false),"
            " got a list"
        ]

    def test_a_bad_timeout(self, problems: Callable[[str], list[str]]) -> None:
        assert problems(
            """\
            actions:
              a: {uses: wait.signal, with: {name: a, timeout: soon}}
              b: {uses: wait.signal, with: {name: b, timeout: 0}}
            """
        ) == [
            "5:51: actions.a.with.timeout: 'soon' is not a duration (e.g. 500ms, 10s, 10m,"
            " 1h30m, 7d)",
            "6:51: actions.b.with.timeout: a timeout must be longer than 0 seconds",
        ]

    def test_names_are_literal_and_unique(self, problems: Callable[[str], list[str]]) -> None:
        assert problems(
            """\
            inputs: {n: {type: string}}
            actions:
              a: {uses: wait.signal, with: {name: go}}
              b: {uses: wait.signal, with: {name: go}}
              c: {uses: wait.signal, with: {name: "${{ inputs.n }}"}}
              d: {uses: wait.signal, with: {name: "not a name"}}
            """
        ) == [
            "7:39: actions.b.with.name: signal 'go' is already waited for by 'a'",
            "8:39: actions.c.with.name: a signal name must be written out, not a reference",
            "9:39: actions.d.with.name: 'not a name' is not a valid name (letters, digits, '_'"
            " and '-', starting with a letter or '_')",
        ]

    def test_a_name_is_required(self, problems: Callable[[str], list[str]]) -> None:
        assert problems(
            """\
            actions:
              a: {uses: wait.signal, with: {timeout: 1h}}
            """
        ) == ["5:32: actions.a.with: missing required key 'name'"]


class TestConcurrency:
    def test_a_key_over_inputs(self, compiled: Callable[[str], CompiledSaga]) -> None:
        saga = compiled(
            """\
            inputs: {app: {type: string}}
            concurrency: {key: "deploy-${{ inputs.app }}"}
            actions:
              a: {uses: test.noop}
            """
        )
        assert saga.concurrency == Concurrency(key="deploy-${{ inputs.app }}", limit=1)
        again = CompiledSaga.from_dict(saga.to_dict())
        assert again.concurrency == saga.concurrency
        assert again.canonical_hash == saga.canonical_hash

    def test_no_concurrency_keeps_the_hash_of_older_sagas(
        self, compiled: Callable[[str], CompiledSaga]
    ) -> None:
        saga = compiled("actions:\n  a: {uses: test.noop}\n")
        assert saga.concurrency is None and "concurrency" not in saga.to_dict()

    def test_a_key_only_knows_inputs(self, problems: Callable[[str], list[str]]) -> None:
        assert problems(
            """\
            inputs: {app: {type: string}}
            concurrency: {key: "${{ actions.a.outputs.text }}-${{ inputs.ap }}", limit: 2}
            actions:
              a: {uses: test.echo, with: {text: x}}
            """
        ) == [
            "5:20: concurrency.key: '${{ actions.a.outputs.text }}' is not known when the run"
            " is created: a concurrency key may refer to inputs and saga.name only",
            "5:20: concurrency.key: unknown input 'ap'",
        ]

    def test_a_bad_block(self, problems: Callable[[str], list[str]]) -> None:
        assert problems(
            """\
            concurrency: {key: "", limit: 0, per: node}
            actions:
              a: {uses: test.noop}
            """
        ) == [
            "4:20: concurrency.key: must have a length of at least 1, not ''",
            "4:31: concurrency.limit: must be at least 1, not 0",
            "4:34: concurrency: unknown key 'per' (expected one of: key, limit)",
        ]


def test_the_schema_covers_concurrency_and_wait_signal(catalog: InfoCatalog) -> None:
    """`sagactl schema`: the saga-level block, and `wait.signal`'s `with:` for editors."""
    from sagactl.engine.saga_schema import schema_with_actions

    schema = schema_with_actions(catalog)
    block = schema["properties"]["concurrency"]
    assert block["required"] == ["key"] and set(block["properties"]) == {"key", "limit"}
    rules = schema["$defs"]["action"]["allOf"]
    wait = next(r for r in rules if r["if"]["properties"]["uses"]["const"] == "wait.signal")
    with_ = wait["then"]["properties"]["with"]
    assert with_["required"] == ["name"]
    assert set(with_["properties"]) == {"name", "timeout", "schema"}
