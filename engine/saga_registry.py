"""SagaRegistry: compiled saga definitions by name, from definition folders and from files.

Folders come from the `sagactl.definitions` plugins (each names a package, a folder or a
function giving one, holding `*.yaml`; sagactl's own `definitions/` registers as `builtin`). A
definition's name is its file name without `.yaml`, and must equal its `metadata.name`.
Files are compiled on first use and kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .action import ActionCatalog
from .child_sagas import child_name
from .compiler import load_saga_file
from .errors import DefinitionError, Location, PluginError
from .model import CompiledSaga
from .plugins import load_plugins
from .yaml_loader import load_yaml

SUFFIXES = (".yaml", ".yml")


def definition_folders() -> list[Path]:
    """The folder of every `sagactl.definitions` plugin, resolved by the plugin registry
    (a package, a path, or a function giving one). Broken ones are left out and reported
    with the other plugin errors."""
    return list(load_plugins().definitions.folders())


def looks_like_path(name_or_path: str) -> bool:
    """A command-line argument names a file when it exists or ends in .yaml/.yml."""
    return name_or_path.endswith(SUFFIXES) or os.path.isfile(name_or_path)


class SagaRegistry:
    """Compiled definitions by name, from folders, plus files named on the command line."""

    def __init__(self, catalog: ActionCatalog, folders: Iterable[Path] | None = None) -> None:
        self._catalog = catalog
        self._broken: tuple[PluginError, ...] = ()
        if folders is None:
            installed = load_plugins().definitions
            folders, self._broken = installed.folders(), installed.errors
        self._folders = list(folders)
        self._files: dict[str, list[Path]] | None = None
        self._compiled: dict[Path, CompiledSaga] = {}
        self._children: dict[str, tuple[str, ...] | None] = {}
        self._beside: list[Path] = []
        """Folders of files named on the command line: their neighbours serve as child
        sagas (`uses: saga/NAME`) where no installed definition has the name."""

    def _index(self) -> dict[str, list[Path]]:
        if self._files is None:
            files: dict[str, list[Path]] = {}
            for folder in self._folders:
                for path in _definitions_in(folder):
                    files.setdefault(path.stem, []).append(path)
            for folder in self._beside:
                for path in _definitions_in(folder):
                    if path.stem not in files:
                        files[path.stem] = [path]
            self._files = files
        return self._files

    def names(self) -> Sequence[str]:
        """The names of every definition in the folders, sorted."""
        return sorted(self._index())

    def path(self, name: str) -> Path:
        """The file that defines `name`; DefinitionError when none or several do."""
        paths = self._index().get(name)
        if not paths:
            known = ", ".join(self.names()) or "none"
            broken = "".join(f"; {error}" for error in self._broken)
            raise DefinitionError(f"no saga named '{name}' (installed: {known}){broken}")
        if len(paths) > 1:
            raise DefinitionError(
                f"saga '{name}' is defined twice: {', '.join(str(p) for p in paths)}"
            )
        return paths[0]

    def children_of(self, name: str) -> tuple[str, ...] | None:
        """The child sagas (`uses: saga/NAME`) that `name` names, read from its file without
        compiling it (so recursion is found before it recurses); None: no such saga."""
        if name not in self._children:
            paths = self._index().get(name)
            if not paths:
                self._children[name] = None
            else:
                try:
                    data = load_yaml(paths[0]).data
                except DefinitionError:
                    data = None  # reported when the saga itself is compiled
                actions = data.get("actions") if isinstance(data, dict) else None
                bodies = actions.values() if isinstance(actions, dict) else ()
                uses = [b.get("uses") for b in bodies if isinstance(b, dict)]
                self._children[name] = tuple(
                    c for u in uses if isinstance(u, str) and (c := child_name(u)) is not None
                )
        return self._children[name]

    def get(self, name: str) -> CompiledSaga:
        """The compiled definition named `name` from the folders."""
        path = self.path(name)
        saga = self.load_file(path)
        if saga.name != name:
            location = load_yaml(path).locate(("metadata", "name"))
            raise DefinitionError(
                f"metadata.name '{saga.name}' does not match the file name '{path.name}'",
                location,
            )
        return saga

    def load_file(self, path: str | os.PathLike[str]) -> CompiledSaga:
        """A definition file, compiled (once per path)."""
        key = Path(path)
        if key not in self._compiled:
            self._compiled[key] = load_saga_file(path, self._catalog, sagas=self)
        return self._compiled[key]

    def resolve(self, name_or_path: str) -> CompiledSaga:
        """A file when the argument looks like a path, else a definition by name."""
        if looks_like_path(name_or_path):
            if not os.path.exists(name_or_path):
                raise DefinitionError("no such file", Location(name_or_path))
            folder = Path(name_or_path).resolve().parent
            if folder not in self._beside:
                self._beside.append(folder)
                self._files = None
                self._children.clear()
            return self.load_file(name_or_path)
        return self.get(name_or_path)


def _definitions_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.iterdir()) if p.suffix in SUFFIXES and p.is_file()]
