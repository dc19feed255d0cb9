"""Detects an app's stack from the files at its root (a Dockerfile or Containerfile wins)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagactl.engine import InputError

RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dockerfile", ("Dockerfile", "Containerfile")),
    ("python", ("requirements.txt", "pyproject.toml", "Pipfile", "setup.py")),
    ("bun", ("bun.lockb", "bun.lock", "bunfig.toml")),
    ("node", ("package.json",)),
    ("go", ("go.mod",)),
    ("ruby", ("Gemfile",)),
    ("rust", ("Cargo.toml",)),
    ("static", ("index.html",)),
)
"""In order: the first stack with one of its files present wins. Bun before node: a bun app
also has a package.json."""


def dockerfile_of(source_dir: Path, config: Mapping[str, Any] | None = None) -> Path | None:
    """The app's own Containerfile: app.toml's `build.dockerfile`, else one at the root."""
    named = (config or {}).get("build", {}).get("dockerfile")
    if named:
        path = source_dir / str(named)
        if not _inside_file(source_dir, path):
            raise InputError(f"app.toml names build.dockerfile {named!r}, which is not a file")
        return path
    for name in RULES[0][1]:
        if _inside_file(source_dir, source_dir / name):
            return source_dir / name
    return None


def _inside_file(root: Path, path: Path) -> bool:
    """A regular file (symlinks followed) that stays inside `root`."""
    try:
        return path.is_file() and path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def detect(source_dir: Path, config: Mapping[str, Any] | None = None) -> str:
    """One of dockerfile, python, node, bun, go, ruby, rust, static; InputError when none."""
    if dockerfile_of(source_dir, config) is not None:
        return "dockerfile"
    for stack, files in RULES[1:]:
        if any(_inside_file(source_dir, source_dir / name) for name in files):
            return stack
    looked_for = ", ".join(name for _, files in RULES for name in files)
    raise InputError(f"cannot tell the app's stack: none of {looked_for} is at its root")
