"""Golden drawings: every shipped definition, and a hand-built build saga, in each text format.

`SAGACTL_UPDATE_GOLDEN=1` rewrites the expected files instead of comparing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest
from sagactl.engine import CompiledSaga
from sagactl.engine.plugins import load_plugins
from sagactl.engine.render import render

from .sagas import BUILD_STATES, build_saga

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
DEFINITIONS = sorted((ROOT / "definitions").glob("*.yaml"))
TEXT_FORMATS = ("text", "mermaid", "dot", "json")
UPDATE = os.environ.get("SAGACTL_UPDATE_GOLDEN") == "1"


def _check(drawing: str | bytes, expected_file: Path) -> None:
    assert isinstance(drawing, str)
    if UPDATE:
        expected_file.parent.mkdir(parents=True, exist_ok=True)
        expected_file.write_text(drawing, encoding="utf-8")
        return
    if not expected_file.exists():
        pytest.fail(f"{expected_file} is missing: run with SAGACTL_UPDATE_GOLDEN=1 to write it")
    assert drawing == expected_file.read_text(encoding="utf-8"), (
        f"{expected_file.name} differs; if the change is intended, rerun with "
        "SAGACTL_UPDATE_GOLDEN=1 and review the diff"
    )


def _graphviz_draws(dot: str, names: list[str]) -> None:
    done = subprocess.run(
        ["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=60, check=True
    )
    for name in names:
        assert f"<title>{name}</title>" in done.stdout


def _compile(path: Path) -> CompiledSaga:
    # The compiler lands separately; skip only while its module does not exist at all.
    if importlib.util.find_spec("sagactl.engine.compiler") is None:
        pytest.skip("sagactl.engine.compiler is not there yet")
    compiler = importlib.import_module("sagactl.engine.compiler")
    saga: CompiledSaga = compiler.load_saga_file(path, load_plugins().actions)
    return saga


class TestShippedDefinitions:
    @pytest.mark.parametrize("fmt", TEXT_FORMATS)
    @pytest.mark.parametrize("path", DEFINITIONS, ids=[p.stem for p in DEFINITIONS])
    def test_matches_golden(self, path: Path, fmt: str) -> None:
        """`render` of each definitions/*.yaml equals tests/golden/<saga>.<fmt>."""
        saga = _compile(path)
        drawing = render(saga, fmt)
        _check(drawing, GOLDEN / f"{path.stem}.{fmt}")
        if fmt == "dot":
            assert isinstance(drawing, str)
            _graphviz_draws(drawing, list(saga.actions))


class TestHandBuiltBuildSaga:
    @pytest.mark.parametrize("fmt", TEXT_FORMATS)
    def test_matches_golden(self, fmt: str) -> None:
        """The hand-built 11-action build saga draws as tests/golden/handbuilt-build.<fmt>."""
        _check(render(build_saga(), fmt), GOLDEN / f"handbuilt-build.{fmt}")

    @pytest.mark.parametrize("fmt", TEXT_FORMATS)
    def test_with_states_matches_golden(self, fmt: str) -> None:
        """The same saga with run states draws as tests/golden/handbuilt-build-states.<fmt>."""
        _check(
            render(build_saga(), fmt, states=BUILD_STATES),
            GOLDEN / f"handbuilt-build-states.{fmt}",
        )

    def test_golden_dot_is_valid_graphviz(self) -> None:
        """The checked-in DOT file itself lays out with Graphviz."""
        dot = (GOLDEN / "handbuilt-build.dot").read_text(encoding="utf-8")
        _graphviz_draws(dot, list(build_saga().actions))

    def test_no_stray_golden_files(self) -> None:
        """Every golden file belongs to a shipped definition or the hand-built saga."""
        known = {p.stem for p in DEFINITIONS} | {"handbuilt-build", "handbuilt-build-states"}
        for file in GOLDEN.iterdir():
            stem, _, fmt = file.name.rpartition(".")
            assert stem in known and fmt in TEXT_FORMATS, f"stray golden file {file.name}"
            assert not re.search(r"[ \t]+$", file.read_text(encoding="utf-8"), re.M)
