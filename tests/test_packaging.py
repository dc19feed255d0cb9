"""The distribution's layout: every import package listed, no top-level engine/actions/plugins."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"engine", "definitions", "actions", "plugins", "server"}


def _listed_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def _packages_on_disk() -> set[str]:
    found = set()
    for folder in FOLDERS:
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT).parts
            found.add(".".join(("sagactl", *relative)))
    return found


class TestPackaging:
    def test_every_package_folder_is_listed(self) -> None:
        """A folder with an __init__.py that pyproject does not list would not be installed."""
        assert _packages_on_disk() - _listed_packages() == set()

    def test_no_listed_package_is_missing(self) -> None:
        """Every listed package exists on disk."""
        assert _listed_packages() - _packages_on_disk() == set()

    def test_sagactl_is_a_namespace(self) -> None:
        """`sagactl` itself has no __init__.py (PEP 420), and nothing installs bare names."""
        import sagactl

        assert getattr(sagactl, "__file__", None) is None
        assert all(name.startswith("sagactl.") for name in _listed_packages())

    def test_public_api_matches_all(self) -> None:
        """sagactl.engine re-exports exactly what __all__ names."""
        import sagactl.engine as engine

        exported = {
            name
            for name, value in vars(engine).items()
            if not name.startswith("_")
            and not isinstance(value, ModuleType)
            and name != "annotations"  # the __future__ feature object
        }
        assert set(engine.__all__) == exported
