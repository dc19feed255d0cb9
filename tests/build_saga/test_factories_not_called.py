"""`sagactl actions` lists the eleven build actions without calling their factories: each
factory's return annotation names its concrete class, which holds the schemas."""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any

import pytest
from click.testing import CliRunner
from sagactl.engine import Action, Dependencies
from sagactl.engine.cli.plugin_commands import actions
from sagactl.engine.plugins import load_plugins, reset_plugins

from .test_action_schemas import EXPECTED


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every built-in action factory replaced by one that records its calls (annotations
    kept), seen by a fresh plugin scan."""
    made: list[str] = []
    for entry in entry_points(group="sagactl.actions"):
        if entry.name not in EXPECTED:
            continue
        module = importlib.import_module(entry.module)
        monkeypatch.setattr(module, entry.attr, _recording(entry.name, entry.load(), made))
    reset_plugins()
    yield made
    reset_plugins()


def _recording(name: str, factory: Callable[..., Any], made: list[str]) -> Callable[..., Any]:
    @functools.wraps(factory)
    def recorded(deps: Dependencies) -> Any:
        made.append(name)
        return factory(deps)

    return recorded


def test_listing_actions_calls_no_factory(calls: list[str]) -> None:
    """`sagactl actions --json` describes all eleven from their classes; no factory runs."""
    done = CliRunner().invoke(actions, ["--json"])
    assert done.exit_code == 0, done.output
    listed = {a["name"]: a for a in json.loads(done.stdout)}
    assert set(EXPECTED) <= set(listed)
    for name, compensable in EXPECTED.items():
        assert listed[name]["compensable"] is compensable
        assert listed[name]["distribution"] == "sagactl"
    assert calls == []


def test_the_recording_factories_are_the_ones_the_registry_calls(calls: list[str]) -> None:
    """The check above can fail: creating an action does go through the recorded factory."""
    made = load_plugins().actions.create("build.receive_tar", Dependencies())
    assert isinstance(made, Action)
    assert calls == ["build.receive_tar"]
