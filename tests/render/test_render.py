"""Renderers on hand-built compiled sagas: JSON, DOT through real Graphviz, Mermaid, text."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from sagactl.engine import ActionSpec, InputError
from sagactl.engine.render import FORMATS, render
from sagactl.engine.render.facts import STATES, compensation_edges, compensation_stages
from sagactl.engine.render.mermaid import node_id

from .sagas import BUILD_ACTIONS, BUILD_STATES, build_saga, saga, spec


def _text(fmt: str, **kwargs: object) -> str:
    out = render(build_saga(), fmt, **kwargs)  # type: ignore[arg-type]
    assert isinstance(out, str)
    return out


class TestCompensationOrder:
    def test_build_saga_order(self) -> None:
        """create_version, then build_image, then launch_buildkit and receive_tar together."""
        assert compensation_stages(build_saga()) == (
            ("create_version",),
            ("build_image",),
            ("launch_buildkit", "receive_tar"),
        )

    def test_order_passes_through_irreversible_actions(self) -> None:
        """a -> x (irreversible) -> b: b is still undone before a."""
        s = saga("t", spec("a"), spec("x", ["a"], compensable=False), spec("b", ["x"]))
        assert compensation_edges(s) == (("b", "a"),)

    def test_only_the_nearest_order_is_drawn(self) -> None:
        """a -> b -> c: c before b before a, without the redundant c before a."""
        s = saga("t", spec("a"), spec("b", ["a"]), spec("c", ["a", "b"]))
        assert compensation_edges(s) == (("b", "a"), ("c", "b"))

    def test_pivot_and_what_follows_are_never_compensated(self) -> None:
        """Actions from the pivot on roll forward; those before it stay undoable."""
        s = saga("t", spec("a"), spec("p", ["a"], pivot=True), spec("z", ["p"]), spec("side"))
        assert compensation_stages(s) == (("a", "side"),)


class TestJson:
    def test_nodes_and_dependency_edges(self) -> None:
        """Nodes carry id, uses, pivot, compensable; edges are the dependencies, sorted."""
        document = json.loads(_text("json"))
        assert document["saga"] == "build-from-tar"
        nodes = {n["id"]: n for n in document["nodes"]}
        assert len(nodes) == 11
        assert nodes["set_active_version"] == {
            "id": "set_active_version",
            "uses": "build.set_active_version",
            "pivot": True,
            "compensable": True,
        }
        assert nodes["load_config"]["compensable"] is False
        edges = [(e["source"], e["target"]) for e in document["edges"]]
        assert edges == sorted(edges)
        assert ("resolve_cluster_ip", "launch_buildkit") in edges
        assert ("build_image", "receive_tar") not in edges  # compensation is not an edge
        assert len(edges) == 16

    def test_states_added_to_every_node(self) -> None:
        """With states, each node has one; an action without a state is pending."""
        nodes = {n["id"]: n for n in json.loads(_text("json", states=BUILD_STATES))["nodes"]}
        assert nodes["build_image"]["state"] == "failed"
        assert nodes["stop_old_sandboxes"]["state"] == "pending"

    def test_same_output_whatever_the_declaration_order(self) -> None:
        """Every format is byte-identical when the actions are declared in another order."""
        shuffled = list(BUILD_ACTIONS)
        random.Random(7).shuffle(shuffled)
        for fmt in ("text", "mermaid", "dot", "json"):
            assert render(build_saga(shuffled), fmt) == render(build_saga(), fmt)


class TestDot:
    def test_graphviz_parses_it(self) -> None:
        """Graphviz lays the DOT out: the SVG has a node for every action."""
        svg = _text("svg", states=BUILD_STATES)
        assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
        for name in build_saga().actions:
            assert f"<title>{name}</title>" in svg

    def test_dependencies_solid_compensation_dashed(self) -> None:
        """Dependency edges have no style; compensation edges are dashed and do not rank."""
        dot = _text("dot")
        assert '  "resolve_cluster_ip" -> "launch_buildkit";\n' in dot
        dashed = re.findall(r'"(\w+)" -> "(\w+)" \[style=dashed', dot)
        assert dashed == [
            ("build_image", "launch_buildkit"),
            ("build_image", "receive_tar"),
            ("create_version", "build_image"),
        ]
        assert dot.count("constraint=false") == 3

    def test_pivot_and_irreversible_styled(self) -> None:
        """The pivot is a hexagon, irreversible actions have notched corners, others rounded."""
        dot = _text("dot")
        lines = {m[0]: m[1] for m in re.findall(r'^  "(\w+)" \[(label=.*)\];$', dot, re.M)}
        assert 'shape="hexagon"' in lines["set_active_version"]
        assert "pivot" in lines["set_active_version"]
        assert 'style="filled,diagonals"' in lines["load_config"]
        assert 'style="rounded,filled"' in lines["receive_tar"]

    def test_states_colour_the_nodes(self) -> None:
        """With states, each node is filled with its state's colour and labelled with it."""
        dot = _text("dot", states=BUILD_STATES)
        lines = {m[0]: m[1] for m in re.findall(r'^  "(\w+)" \[(label=.*)\];$', dot, re.M)}
        for name, state in BUILD_STATES.items():
            assert f'fillcolor="{STATES[state]}"' in lines[name]
            assert f"[{state}]" in lines[name]
        assert f'fillcolor="{STATES["pending"]}"' in lines["stop_old_sandboxes"]

    def test_unknown_state_is_drawn_plainly(self) -> None:
        """A state outside the known set is still shown, on a neutral fill."""
        dot = render(saga("t", spec("a")), "dot", states={"a": "paused", "ghost": "failed"})
        assert (
            '"a" [label="a\\nbuild.a\\n[paused]", fillcolor="#ffffff", style="rounded,filled"];'
            in str(dot)
        )
        assert "ghost" not in str(dot)

    def test_quotes_in_names_are_escaped(self) -> None:
        """A `uses` with a quote still gives DOT that Graphviz accepts."""
        tricky = saga("odd", ActionSpec(name="a", uses='x"y\\z'))
        svg = render(tricky, "svg")
        assert isinstance(svg, str) and "<title>a</title>" in svg


class TestMermaid:
    def test_compensation_edges_dashed_and_coloured(self) -> None:
        """Dependencies are `-->`, compensation `-.->`, and linkStyle colours exactly those."""
        text = _text("mermaid")
        assert text.startswith("%% build-from-tar v1")
        assert "\nflowchart TD\n" in text
        assert len(re.findall(r"^  \w+ --> \w+$", text, re.M)) == 16
        assert re.findall(r"^  (\w+) -\.-> (\w+)$", text, re.M) == [
            ("build_image", "launch_buildkit"),
            ("build_image", "receive_tar"),
            ("create_version", "build_image"),
        ]
        assert "  linkStyle 16,17,18 stroke:#b22222\n" in text

    def test_pivot_and_irreversible_shapes_and_classes(self) -> None:
        """The pivot is a hexagon with class pivot; irreversible ones a subroutine box."""
        text = _text("mermaid")
        assert (
            '  set_active_version{{"set_active_version<br/>build.set_active_version<br/>pivot"}}'
            in text
        )
        assert '  load_config[["load_config<br/>build.load_config<br/>irreversible"]]' in text
        assert '  receive_tar("receive_tar<br/>build.receive_tar")' in text
        assert "  class set_active_version pivot\n" in text

    def test_states_become_classes(self) -> None:
        """Each state used gets a fill class, and each node is in its state's class."""
        text = _text("mermaid", states=BUILD_STATES)
        assert f"  classDef state_failed fill:{STATES['failed']}\n" in text
        assert "  class build_image state_failed\n" in text
        assert (
            "  class create_version,set_active_version,stop_old_sandboxes state_pending\n" in text
        )
        assert "state_running" not in text  # no action runs

    def test_awkward_names_get_safe_distinct_ids(self) -> None:
        """`end`, dashes and `x_` names are spelled in hex, so ids parse and never collide."""
        assert node_id("build_image") == "build_image"
        ids = {node_id(n) for n in ("end", "a-b", "x_612d62", "a_b")}
        assert len(ids) == 4
        assert node_id("end") == "x_656e64"
        assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", i) for i in ids)
        text = render(saga("t", spec("end"), spec("a-b", ["end"])), "mermaid")
        assert "  x_656e64 --> x_612d62\n" in str(text)


class TestText:
    def test_layers_in_order_with_dependencies(self) -> None:
        """Layers follow saga.layers(); each line shows uses and `← dependencies`."""
        text = _text("text")
        assert text.startswith("saga build-from-tar v1: 11 actions in 7 layers\n")
        layer_lines = [line for line in text.splitlines() if line.startswith("layer ")]
        assert len(layer_lines) == len(build_saga().layers())
        first = text.split("layer 2")[0]
        for name in ("get_next_version", "receive_tar", "resolve_cluster_ip"):
            assert f"  {name} " in first
        create = next(line for line in text.splitlines() if line.startswith("  create_version "))
        assert create.endswith("← build_image, get_next_version, parse_services")
        assert "build.create_version" in create

    def test_pivot_and_irreversible_marked(self) -> None:
        """The pivot is marked [pivot], actions without compensation [irreversible]."""
        lines = {
            line.split()[0]: line for line in _text("text").splitlines() if line.startswith("  ")
        }
        assert "[pivot]" in lines["set_active_version"]
        assert "[irreversible]" in lines["load_config"]
        assert "[" not in lines["receive_tar"]

    def test_compensation_order_listed(self) -> None:
        """The compensation order is listed by stage, then what rolls forward."""
        text = _text("text")
        assert "  1. create_version\n  2. build_image\n  3. launch_buildkit, receive_tar\n" in text
        assert "never compensated (rolls forward): set_active_version, stop_old_sandboxes" in text

    def test_states_shown(self) -> None:
        """With states, each action's line shows its state; missing ones are pending."""
        lines = {
            line.split()[0]: line.split()
            for line in _text("text", states=BUILD_STATES).splitlines()
            if line.startswith("  ") and not line.startswith("  1.")
        }
        assert lines["build_image"][1] == "failed"
        assert lines["stop_old_sandboxes"][1] == "pending"

    def test_nothing_to_undo(self) -> None:
        """A saga of irreversible actions says there is nothing to compensate."""
        text = render(saga("t", spec("a", compensable=False)), "text")
        assert "compensation on failure: nothing to undo" in str(text)


class TestImages:
    def test_png_is_bytes(self) -> None:
        """png comes back as PNG bytes."""
        png = render(build_saga(), "png")
        assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")

    def test_missing_graphviz_is_a_clear_input_error(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Without `dot` on PATH, svg/png raise one InputError saying what to install."""
        monkeypatch.setenv("PATH", str(tmp_path))
        for fmt in ("svg", "png"):
            with pytest.raises(InputError) as caught:
                render(build_saga(), fmt)
            assert str(caught.value) == "Graphviz 'dot' not found: install the graphviz package"
        assert isinstance(render(build_saga(), "dot"), str)  # the text formats need no Graphviz

    def test_unknown_format(self) -> None:
        """An unknown format is an InputError listing the known ones."""
        with pytest.raises(InputError, match="unknown graph format 'gif': use one of text, "):
            render(build_saga(), "gif")
        assert FORMATS == ("text", "mermaid", "dot", "json", "svg", "png")
