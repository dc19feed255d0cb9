"""SagaRegistry: compiled saga definitions by name, from definition folders and from files.

Folders come from the `sagactl.definitions` entry points (each names a package whose
folder holds `*.yaml`; sagactl's own `definitions/` registers as `builtin`). A
definition's name is its file name without `.yaml`, and must equal its `metadata.name`.
Files are compiled on first use and kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from importlib import metadata, resources
from pathlib import Path

from .action import ActionCatalog
from .compiler import load_saga_file
from .errors import DefinitionError, Location, PluginError
from .model import CompiledSaga
from .yaml_loader import load_yaml

GROUP = "sagactl.definitions"
SUFFIXES = (".yaml", ".yml")


def definition_folders() -> list[Path]:
    """The folder of every package named in the `sagactl.definitions` entry-point group.

    Raises PluginError naming the distribution whose entry point names no importable package.
    """
    folders: list[Path] = []
    for entry in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        distribution = entry.dist.name if entry.dist else None
        try:
            folder = Path(str(resources.files(entry.module)))
        except (ImportError, TypeError) as exc:
            raise PluginError(
                f"definitions '{entry.name}' of {distribution or 'an unknown distribution'}: "
                f"cannot import {entry.module}: {exc}",
                group=GROUP,
                name=entry.name,
                distribution=distribution,
            ) from None
        if folder not in folders:
            folders.append(folder)
    return folders


def looks_like_path(name_or_path: str) -> bool:
    """A command-line argument names a file when it exists or ends in .yaml/.yml."""
    return name_or_path.endswith(SUFFIXES) or os.path.isfile(name_or_path)


class SagaRegistry:
    """Compiled definitions by name, from folders, plus files named on the command line."""

    def __init__(self, catalog: ActionCatalog, folders: Iterable[Path] | None = None) -> None:
        self._catalog = catalog
        self._folders = list(folders) if folders is not None else definition_folders()
        self._files: dict[str, list[Path]] | None = None
        self._compiled: dict[Path, CompiledSaga] = {}

    def _index(self) -> dict[str, list[Path]]:
        if self._files is None:
            files: dict[str, list[Path]] = {}
            for folder in self._folders:
                for path in sorted(folder.iterdir()) if folder.is_dir() else ():
                    if path.suffix in SUFFIXES and path.is_file():
                        files.setdefault(path.stem, []).append(path)
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
            raise DefinitionError(f"no saga named '{name}' (installed: {known})")
        if len(paths) > 1:
            raise DefinitionError(
                f"saga '{name}' is defined twice: {', '.join(str(p) for p in paths)}"
            )
        return paths[0]

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
            self._compiled[key] = load_saga_file(path, self._catalog)
        return self._compiled[key]

    def resolve(self, name_or_path: str) -> CompiledSaga:
        """A file when the argument looks like a path, else a definition by name."""
        if looks_like_path(name_or_path):
            if not os.path.exists(name_or_path):
                raise DefinitionError("no such file", Location(name_or_path))
            return self.load_file(name_or_path)
        return self.get(name_or_path)
