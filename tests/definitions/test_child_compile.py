"""`outputs:` and `uses: saga/NAME` at compile time, good and bad, with their locations."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sagactl.engine import DefinitionError, DefinitionErrors
from sagactl.engine.saga_registry import SagaRegistry

from .conftest import InfoCatalog

HEAD = "apiVersion: sagactl/v1\nkind: Saga\nmetadata: {{name: {name}}}\n"

CHILD = """\
inputs:
  text: {type: string}
  times: {type: integer, default: 1}
actions:
  echo: {uses: test.echo, with: {text: "${{ inputs.text }}"}}
  count: {uses: test.count, with: {start: "${{ inputs.times }}"}}
outputs:
  said: ${{ actions.echo.outputs.text }}
  counted: ${{ actions.count.outputs.count }}
  note: "said ${{ actions.echo.outputs.text }}"
  fixed: 3
"""


def folder_of(tmp_path: Path, **bodies: str) -> Path:
    folder = tmp_path / "defs"
    folder.mkdir(exist_ok=True)
    for name, body in bodies.items():
        text = HEAD.format(name=name) + textwrap.dedent(body)
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def problems(registry: SagaRegistry, name: str) -> list[str]:
    """`file:line:col: message` per error, the file's name only."""
    with pytest.raises(DefinitionError) as caught:
        registry.get(name)
    error = caught.value
    found = error.errors if isinstance(error, DefinitionErrors) else [error]
    return [
        f"{Path(e.location.file).name}:{e.location.line}:{e.location.column}: {e.message}"
        for e in found
        if e.location is not None
    ]


class TestOutputs:
    def test_outputs_are_typed(self, tmp_path: Path, catalog: InfoCatalog) -> None:
        registry = SagaRegistry(catalog, [folder_of(tmp_path, child=CHILD)])
        saga = registry.get("child")
        assert dict(saga.outputs)["said"] == "${{ actions.echo.outputs.text }}"
        types = {k: dict(v) for k, v in saga.output_schema["properties"].items()}
        assert types == {
            "said": {"type": ("string",)},
            "counted": {"type": ("integer",)},
            "note": {"type": ("string",)},
            "fixed": {"type": ("integer",)},
        }
        assert saga.to_dict()["outputs"]["fixed"] == 3

    def test_bad_references(self, tmp_path: Path, catalog: InfoCatalog) -> None:
        body = """\
        actions:
          echo: {uses: test.echo, with: {text: hi}}
        outputs:
          a: ${{ actions.echo.outputs.txt }}
          b: ${{ actions.nope.outputs.text }}
          c: ${{ inputs.missing }}
          d: ${{ actions.echo.oops }}
        """
        registry = SagaRegistry(catalog, [folder_of(tmp_path, bad=body)])
        assert problems(registry, "bad") == [
            "bad.yaml:7:6: outputs.a: action 'echo' (test.echo) has no output 'txt'"
            " (did you mean 'text'?)",
            "bad.yaml:8:6: outputs.b: unknown action 'nope'",
            "bad.yaml:9:6: outputs.c: unknown input 'missing' (the saga declares no inputs)",
            "bad.yaml:10:6: outputs.d: '${{ actions.echo.oops }}' is not a reference: use"
            " inputs.NAME, actions.ACTION.outputs.NAME, saga.id, saga.name, or item,"
            " item.FIELD and index in a for_each action",
        ]

    def test_outputs_must_be_a_mapping_of_identifiers(
        self, tmp_path: Path, catalog: InfoCatalog
    ) -> None:
        body = """\
        actions:
          echo: {uses: test.echo, with: {text: hi}}
        outputs: [x]
        """
        registry = SagaRegistry(catalog, [folder_of(tmp_path, bad=body)])
        (problem,) = problems(registry, "bad")
        assert problem.startswith("bad.yaml:6:10: outputs: expected a mapping")


class TestChildSagas:
    def test_child_is_compiled_and_pinned(self, tmp_path: Path, catalog: InfoCatalog) -> None:
        parent = """\
        actions:
          sub: {uses: saga/child, with: {text: hello}}
          after: {uses: test.count, with: {start: "${{ actions.sub.outputs.counted }}"}}
        """
        registry = SagaRegistry(catalog, [folder_of(tmp_path, child=CHILD, parent=parent)])
        saga = registry.get("parent")
        spec = saga.actions["sub"]
        assert spec.child == registry.get("child")
        assert spec.retry.attempts == 1 and spec.timeout is None
        assert saga.dependencies("after") == {"sub"}
        assert saga.to_dict()["actions"]["sub"]["child"]["name"] == "child"
        assert [c.name for c in saga.children()] == ["child"]

    def test_with_checked_against_child_inputs(self, tmp_path: Path, catalog: InfoCatalog) -> None:
        parent = """\
        inputs: {n: {type: integer}}
        actions:
          sub: {uses: saga/child, with: {text: 5, extra: x}}
          other: {uses: saga/child, with: {times: 2}}
          typed: {uses: saga/child, with: {text: "${{ inputs.n }}"}}
          after: {uses: test.echo, with: {text: "${{ actions.sub.outputs.said2 }}"}}
          wrong: {uses: test.echo, with: {text: "${{ actions.sub.outputs.counted }}"}}
          again: {uses: saga/child, with: {text: a}, retry: {attempts: 3}}
        """
        registry = SagaRegistry(catalog, [folder_of(tmp_path, child=CHILD, parent=parent)])
        assert problems(registry, "parent") == [
            "parent.yaml:6:40: actions.sub.with.text: expected a string, got 5 (a number)"
            ' (quote it, "5", if you meant the string)',
            "parent.yaml:6:43: actions.sub.with: unknown key 'extra' (did you mean 'text'?)",
            "parent.yaml:7:35: actions.other.with: missing required key 'text'",
            "parent.yaml:8:42: actions.typed.with.text: expected a string, but input 'n' is"
            " an integer",
            "parent.yaml:9:41: actions.after.with.text: action 'sub' (saga/child) has no"
            " output 'said2' (did you mean 'said'?)",
            "parent.yaml:10:41: actions.wrong.with.text: expected a string, but output"
            " 'counted' of 'sub' is an integer",
            "parent.yaml:11:53: actions.again.retry: a child saga is not retried: its actions are",
        ]

    def test_unknown_child(self, tmp_path: Path, catalog: InfoCatalog) -> None:
        parent = """\
        actions:
          sub: {uses: saga/chlid}
        """
        registry = SagaRegistry(catalog, [folder_of(tmp_path, child=CHILD, parent=parent)])
        assert problems(registry, "parent") == [
            "parent.yaml:5:15: actions.sub.uses: unknown saga 'chlid' (did you mean 'child'?)"
        ]

    def test_direct_recursion(self, tmp_path: Path, catalog: InfoCatalog) -> None:
        body = """\
        actions:
          again: {uses: saga/loop}
        """
        registry = SagaRegistry(catalog, [folder_of(tmp_path, loop=body)])
        assert problems(registry, "loop") == [
            "loop.yaml:5:17: actions.again.uses: recursive child saga: loop -> loop"
        ]

    def test_indirect_recursion(self, tmp_path: Path, catalog: InfoCatalog) -> None:
        one = "actions:\n  a: {uses: test.noop}\n  b: {uses: saga/two}\n"
        two = "actions:\n  c: {uses: saga/three}\n"
        three = "actions:\n  d: {uses: saga/one}\n"
        registry = SagaRegistry(catalog, [folder_of(tmp_path, one=one, two=two, three=three)])
        assert problems(registry, "one") == [
            "one.yaml:6:13: actions.b.uses: recursive child saga: one -> two -> three -> one"
        ]
        assert problems(registry, "three") == [
            "three.yaml:5:13: actions.d.uses: recursive child saga: three -> one -> two -> three"
        ]

    def test_broken_child(self, tmp_path: Path, catalog: InfoCatalog) -> None:
        broken = "actions:\n  a: {uses: test.nope}\n"
        parent = "actions:\n  sub: {uses: saga/broken}\n"
        registry = SagaRegistry(catalog, [folder_of(tmp_path, broken=broken, parent=parent)])
        (problem,) = problems(registry, "parent")
        assert problem.startswith(
            "parent.yaml:5:15: actions.sub.uses: child saga 'broken' does not compile: "
        )
        assert "broken.yaml:5:13: actions.a.uses: unknown action 'test.nope'" in problem

    def test_child_with_pivot_is_irreversible(self, tmp_path: Path, catalog: InfoCatalog) -> None:
        pivoted = "actions:\n  a: {uses: test.noop, pivot: true}\n"
        parent = "actions:\n  sub: {uses: saga/pivoted}\n"
        registry = SagaRegistry(catalog, [folder_of(tmp_path, pivoted=pivoted, parent=parent)])
        assert registry.get("parent").actions["sub"].compensable is False

    def test_without_registry_no_child_is_known(self, tmp_path: Path, catalog: InfoCatalog) -> None:
        from sagactl.engine.compiler import load_saga_file

        path = folder_of(tmp_path, parent="actions:\n  sub: {uses: saga/child}\n") / "parent.yaml"
        with pytest.raises(
            DefinitionError, match="unknown saga 'child' \\(no sagas are installed\\)"
        ):
            load_saga_file(path, catalog)
