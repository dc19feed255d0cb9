"""Definition test fixtures: a catalog of test actions, helpers that write real files."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine import ActionInfo, CompiledSaga, DefinitionError, DefinitionErrors
from sagactl.engine.compiler import load_saga_file


class InfoCatalog:
    """An ActionCatalog over ready ActionInfos (what the plugin registry hands the compiler)."""

    def __init__(self, infos: Iterable[ActionInfo]) -> None:
        self._infos = {info.name: info for info in infos}

    def info(self, name: str) -> ActionInfo | None:
        return self._infos.get(name)

    def names(self) -> Sequence[str]:
        return sorted(self._infos)


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


STRING = {"type": "string"}

# Test actions: small, typed, each exercising one kind of schema.
TEST_ACTIONS = [
    ActionInfo("test.echo", _obj({"text": STRING}), _obj({"text": STRING}), compensable=True),
    ActionInfo(
        "test.count",
        _obj({"start": {"type": "integer", "minimum": 0}, "label": STRING}, ["start"]),
        _obj({"count": {"type": "integer"}}),
        compensable=True,
    ),
    ActionInfo(
        "test.flag",
        _obj({"enabled": {"type": "boolean"}, "mode": {"enum": ["fast", "safe"]}}, []),
        {"type": "object", "additionalProperties": {"type": "string"}},
        compensable=False,
    ),
    ActionInfo("test.noop", _obj({}, []), _obj({}), compensable=True),
    ActionInfo("test.any", {"type": "object"}, {"type": "object"}, compensable=True),
]


def _build_actions() -> list[ActionInfo]:
    """The real build.* actions, as the installed plugin registry describes them."""
    from sagactl.engine.plugins import load_plugins

    registry = load_plugins().actions
    return [
        info
        for name in registry.names()
        if (info := registry.info(name)) is not None and name.startswith("build.")
    ]


@pytest.fixture(scope="session")
def catalog() -> InfoCatalog:
    return InfoCatalog([*TEST_ACTIONS, *_build_actions()])


HEADER = "apiVersion: sagactl/v1\nkind: Saga\nmetadata: {name: demo}\n"


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Writes dedented YAML to a real file; `header=True` prepends apiVersion/kind/metadata."""

    def _write(text: str, name: str = "saga.yaml", *, header: bool = False) -> Path:
        path = tmp_path / name
        body = textwrap.dedent(text).lstrip("\n")
        path.write_text(HEADER + body if header else body, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def compile_yaml(write: Callable[..., Path], catalog: InfoCatalog) -> Callable[..., CompiledSaga]:
    """Writes YAML to a file and compiles it."""

    def _compile(text: str, *, header: bool = True) -> CompiledSaga:
        return load_saga_file(write(text, header=header), catalog)

    return _compile


_LOCATED = re.compile(r"^.*?:(\d+):(\d+): (.*)$")


@pytest.fixture
def problems(write: Callable[..., Path], catalog: InfoCatalog) -> Callable[..., list[str]]:
    """Writes YAML, compiles it expecting failure; returns `line:col: message` per error."""

    def _problems(text: str, *, header: bool = True) -> list[str]:
        path = write(text, header=header)
        with pytest.raises(DefinitionError) as caught:
            load_saga_file(path, catalog)
        error = caught.value
        found = error.errors if isinstance(error, DefinitionErrors) else [error]
        lines = []
        for item in found:
            assert item.location is not None and item.location.file == str(path)
            lines.append(f"{item.location.line}:{item.location.column}: {item.message}")
        return lines

    return _problems
