"""A child saga drawn nested under the action that runs it, in every text format."""

from __future__ import annotations

import json

from sagactl.engine import ActionSpec, CompiledSaga
from sagactl.engine.render import render

CHILD = CompiledSaga(
    name="kid",
    version=2,
    actions={
        "c1": ActionSpec(name="c1", uses="x.one"),
        "c2": ActionSpec(name="c2", uses="x.two", depends_on=frozenset({"c1"})),
    },
)
PARENT = CompiledSaga(
    name="family",
    version=1,
    actions={
        "p1": ActionSpec(name="p1", uses="x.one"),
        "kid": ActionSpec(name="kid", uses="saga/kid", child=CHILD, depends_on=frozenset({"p1"})),
    },
)
STATES = {"p1": "succeeded", "kid": "running", "kid/c1": "succeeded", "kid/c2": "running"}


def test_text_nests_the_child_with_its_states() -> None:
    text = str(render(PARENT, "text", states=STATES))
    lines = text.splitlines()
    at = lines.index("    child saga kid v2:")
    assert lines[at - 1].split()[:3] == ["kid", "running", "saga/kid"]
    assert lines[at + 1].split() == ["c1", "succeeded", "x.one"]
    assert lines[at + 2].split() == ["c2", "running", "x.two", "←", "c1"]


def test_json_holds_the_child_document() -> None:
    drawn = json.loads(str(render(PARENT, "json", states=STATES)))
    kid = next(n for n in drawn["nodes"] if n["id"] == "kid")
    assert kid["child"]["saga"] == "kid"
    assert [(n["id"], n["state"]) for n in kid["child"]["nodes"]] == [
        ("c1", "succeeded"),
        ("c2", "running"),
    ]
    assert kid["child"]["edges"] == [{"source": "c1", "target": "c2"}]
    assert "child" not in next(n for n in drawn["nodes"] if n["id"] == "p1")


def test_dot_and_mermaid_draw_a_cluster() -> None:
    dot = str(render(PARENT, "dot", states=STATES))
    assert 'subgraph "cluster_kid" {' in dot
    assert '"kid/c1" -> "kid/c2";' in dot and '"kid" -> "kid/c1" [style=dotted];' in dot
    mermaid = str(render(PARENT, "mermaid"))
    assert 'subgraph x_7375622f6b6964["kid: saga kid v2"]' in mermaid
    assert "x_6b69642f6331 --> x_6b69642f6332" in mermaid  # kid/c1 --> kid/c2
    assert "  end" in mermaid
