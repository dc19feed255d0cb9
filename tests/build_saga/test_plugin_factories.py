"""Builder and runtime entry points: found by name, made from Dependencies or options."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from sagactl.actions.build_from_tar import backends
from sagactl.actions.build_from_tar.settings import BuildSettings
from sagactl.engine import Dependencies, InputError
from sagactl.plugins.builders.base import Builder, BuilderOptions
from sagactl.plugins.runtimes.base import RuntimeOptions, SandboxRuntime


class TestFactories:
    @pytest.mark.parametrize("name", ["oci", "buildah", "buildkit"])
    def test_builders_from_dependencies(self, name: str, tmp_path: Path) -> None:
        """Each builder entry point makes a Builder from a container holding BuilderOptions,
        and from the options themselves."""
        (entry,) = [ep for ep in entry_points(group="sagactl.builders") if ep.name == name]
        deps = Dependencies()
        options = BuilderOptions(work_dir=tmp_path)
        deps.provide(BuilderOptions, options)
        for source in (deps, options):
            builder = entry.load()(source)
            assert isinstance(builder, Builder)
            assert builder.name == name

    def test_local_runtime(self, tmp_path: Path) -> None:
        """The local runtime entry point makes a SandboxRuntime from Dependencies."""
        (entry,) = [ep for ep in entry_points(group="sagactl.runtimes") if ep.name == "local"]
        deps = Dependencies()
        deps.provide(RuntimeOptions, RuntimeOptions(state_dir=tmp_path))
        assert isinstance(entry.load()(deps), SandboxRuntime)

    def test_unknown_builder(self, tmp_path: Path) -> None:
        """An unknown builder name is bad input listing the installed ones."""
        with pytest.raises(InputError, match=r"no builder named 'kaniko'.*buildah"):
            backends.builder("kaniko", BuildSettings(state_dir=tmp_path))

    def test_builder_through_the_plugin_registry(self, tmp_path: Path) -> None:
        """The engine's plugin registry makes the builder the settings describe."""
        made = backends.builder("oci", BuildSettings(state_dir=tmp_path))
        assert made.name == "oci"
        assert made.options.work_dir == tmp_path / "images"  # type: ignore[attr-defined]
