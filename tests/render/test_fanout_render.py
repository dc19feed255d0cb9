"""A fan-out is drawn as one node with its count, in every format."""

from __future__ import annotations

import json

import pytest
from sagactl.engine import ActionSpec, CompiledSaga
from sagactl.engine.render import render

TIMES = "\N{MULTIPLICATION SIGN}"

SAGA = CompiledSaga(
    name="fan",
    version=1,
    inputs={"targets": {"type": "array"}},
    actions={
        "prep": ActionSpec(name="prep", uses="acme.prep"),
        "deploy": ActionSpec(
            name="deploy",
            uses="acme.deploy",
            for_each="${{ inputs.targets }}",
            depends_on=frozenset({"prep"}),
            needs=("prep",),
        ),
    },
)


@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
def test_static_drawing_says_times_n(fmt: str) -> None:
    drawing = render(SAGA, fmt)
    assert isinstance(drawing, str)
    assert f"deploy {TIMES}N" in drawing
    assert f"prep {TIMES}" not in drawing
    assert drawing.count(f"{TIMES}N") == 1  # one node, not one per element


@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
def test_run_drawing_says_done_of_all(fmt: str) -> None:
    states = {"prep": "succeeded", "deploy": "running"}
    drawing = render(SAGA, fmt, states=states, counts={"deploy": (3, 5)})
    assert isinstance(drawing, str)
    assert f"deploy {TIMES}3/5" in drawing and "running" in drawing


def test_a_run_whose_count_is_not_known_yet() -> None:
    drawing = render(SAGA, "text", states={"deploy": "pending"}, counts={"deploy": (0, None)})
    assert isinstance(drawing, str) and f"deploy {TIMES}N" in drawing


def test_json_names_the_array_and_the_count() -> None:
    drawing = render(SAGA, "json", states={"deploy": "running"}, counts={"deploy": (1, 4)})
    assert isinstance(drawing, str)
    nodes = {n["id"]: n for n in json.loads(drawing)["nodes"]}
    assert nodes["deploy"]["for_each"] == "${{ inputs.targets }}"
    assert nodes["deploy"]["elements"] == {"done": 1, "total": 4}
    assert "for_each" not in nodes["prep"] and "elements" not in nodes["prep"]
