"""SagaRegistry: definitions by name from folders and entry points, and files by path."""

from __future__ import annotations

from pathlib import Path

import pytest
from sagactl.engine import DefinitionError, PluginError
from sagactl.engine.plugins import load_plugins, reset_plugins
from sagactl.engine.saga_registry import SagaRegistry, definition_folders, looks_like_path

SAGA = (
    "apiVersion: sagactl/v1\nkind: Saga\nmetadata: {{name: {name}}}\n"
    "actions: {{a: {{uses: test.noop}}}}\n"
)


def _folder(root: Path, name: str, *sagas: str) -> Path:
    folder = root / name
    folder.mkdir()
    for saga in sagas:
        (folder / f"{saga}.yaml").write_text(SAGA.format(name=saga))
    return folder


class TestSagaRegistry:
    def test_names_and_get(self, tmp_path: Path, catalog) -> None:
        """Definitions in the folders are listed by name and compiled once on demand."""
        registry = SagaRegistry(
            catalog, [_folder(tmp_path, "one", "alpha", "beta"), _folder(tmp_path, "two", "gamma")]
        )
        assert registry.names() == ["alpha", "beta", "gamma"]
        saga = registry.get("gamma")
        assert (saga.name, saga.source) == ("gamma", str(tmp_path / "two" / "gamma.yaml"))
        assert registry.get("gamma") is saga

    def test_unknown_name(self, tmp_path: Path, catalog) -> None:
        """An unknown name is one clear error listing what is installed."""
        registry = SagaRegistry(catalog, [_folder(tmp_path, "one", "alpha")])
        with pytest.raises(DefinitionError, match=r"^no saga named 'omega' \(installed: alpha\)$"):
            registry.get("omega")

    def test_defined_twice(self, tmp_path: Path, catalog) -> None:
        """Two folders defining one name is an error naming both files."""
        one, two = _folder(tmp_path, "one", "alpha"), _folder(tmp_path, "two", "alpha")
        with pytest.raises(DefinitionError) as caught:
            SagaRegistry(catalog, [one, two]).get("alpha")
        assert caught.value.message == (
            f"saga 'alpha' is defined twice: {one / 'alpha.yaml'}, {two / 'alpha.yaml'}"
        )

    def test_name_must_match_file(self, tmp_path: Path, catalog) -> None:
        """A file whose metadata.name differs from its file name is refused at the name."""
        folder = _folder(tmp_path, "one")
        (folder / "alpha.yaml").write_text(SAGA.format(name="beta"))
        with pytest.raises(DefinitionError) as caught:
            SagaRegistry(catalog, [folder]).get("alpha")
        assert (
            caught.value.message == "metadata.name 'beta' does not match the file name 'alpha.yaml'"
        )
        assert str(caught.value.location).endswith("alpha.yaml:3:18")

    def test_resolve_path_or_name(self, tmp_path: Path, catalog, monkeypatch) -> None:
        """resolve(): an existing file or a *.yaml/*.yml path is a file, anything else a name."""
        folder = _folder(tmp_path, "one", "alpha")
        loose = tmp_path / "loose.yml"
        loose.write_text(SAGA.format(name="loose"))
        registry = SagaRegistry(catalog, [folder])
        assert registry.resolve(str(loose)).name == "loose"
        assert registry.resolve("alpha").name == "alpha"
        monkeypatch.chdir(folder)
        (folder / "noext").write_text(SAGA.format(name="noext"))
        assert registry.resolve("noext").name == "noext"
        with pytest.raises(DefinitionError) as caught:
            registry.resolve("missing.yaml")
        assert str(caught.value) == "missing.yaml: no such file"

    def test_looks_like_path(self, tmp_path: Path) -> None:
        """The name/path rule: suffix or existing file."""
        assert looks_like_path("x.yaml") and looks_like_path("dir/x.yml")
        assert not looks_like_path("build-from-tar")
        assert looks_like_path(str(Path(__file__)))

    def test_broken_definition_only_fails_itself(self, tmp_path: Path, catalog) -> None:
        """A broken file in a folder does not stop the others from loading."""
        folder = _folder(tmp_path, "one", "alpha")
        (folder / "broken.yaml").write_text("a: [\n")
        registry = SagaRegistry(catalog, [folder])
        assert registry.get("alpha").name == "alpha"
        with pytest.raises(DefinitionError, match="invalid YAML"):
            registry.get("broken")


class TestDefinitionEntryPoints:
    @pytest.fixture(autouse=True)
    def _fresh_plugins(self):
        """Entry points are scanned once per process: rescan for the distributions a test
        puts on the path, and again once it is gone."""
        reset_plugins()
        yield
        reset_plugins()

    def test_builtin_folder(self, catalog) -> None:
        """sagactl's own definitions folder is found through its `builtin` entry point."""
        folders = definition_folders()
        assert any((folder / "build-from-tar.yaml").is_file() for folder in folders)
        assert "build-from-tar" in SagaRegistry(catalog).names()

    def test_installed_distribution(self, tmp_path: Path, monkeypatch, catalog) -> None:
        """A distribution's `sagactl.definitions` entry point adds its package's sagas."""
        _distribution(tmp_path, "acme-sagas", "acme_sagas", module_exists=True)
        (tmp_path / "acme_sagas" / "nightly.yaml").write_text(SAGA.format(name="nightly"))
        monkeypatch.syspath_prepend(str(tmp_path))
        registry = SagaRegistry(catalog)
        assert {"build-from-tar", "nightly"} <= set(registry.names())
        assert registry.get("nightly").source == str(tmp_path / "acme_sagas" / "nightly.yaml")

    def test_broken_distribution(self, tmp_path: Path, monkeypatch, catalog) -> None:
        """An entry point naming a missing package is left out, like every broken plugin: the
        other folders still count, and its PluginError names the distribution, both among the
        plugin errors and where a saga is not found."""
        _distribution(tmp_path, "broken-sagas", "broken_sagas", module_exists=False)
        monkeypatch.syspath_prepend(str(tmp_path))
        assert any((folder / "build-from-tar.yaml").is_file() for folder in definition_folders())
        (error,) = load_plugins().definitions.errors
        assert isinstance(error, PluginError)
        assert error.distribution == "broken-sagas"
        assert "broken-sagas" in str(error) and "broken_sagas" in str(error)
        with pytest.raises(DefinitionError) as caught:
            SagaRegistry(catalog).get("nightly")
        assert str(error) in str(caught.value)

    def test_function_giving_a_folder(self, tmp_path: Path, monkeypatch, catalog) -> None:
        """An entry point naming a function that returns a folder resolves to that folder
        (not to the function's module) for `definition_folders()` and for the registry."""
        _distribution(tmp_path, "fn-sagas", "fn_sagas", module_exists=True)
        (tmp_path / "fn_sagas-1.0.dist-info" / "entry_points.txt").write_text(
            "[sagactl.definitions]\nfn = fn_sagas:folder\n"
        )
        (tmp_path / "fn_sagas" / "__init__.py").write_text("def folder():\n    return 'sagas'\n")
        (tmp_path / "fn_sagas" / "sagas").mkdir()
        (tmp_path / "fn_sagas" / "sagas" / "weekly.yaml").write_text(SAGA.format(name="weekly"))
        monkeypatch.syspath_prepend(str(tmp_path))
        expected = tmp_path / "fn_sagas" / "sagas"
        assert load_plugins().definitions.get("fn").obj == expected
        assert expected in definition_folders()
        assert SagaRegistry(catalog).path("weekly") == expected / "weekly.yaml"


def _distribution(root: Path, dist: str, module: str, *, module_exists: bool) -> None:
    """An installed distribution (dist-info on sys.path) with a sagactl.definitions entry point."""
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[sagactl.definitions]\n{module} = {module}\n")
    if module_exists:
        (root / module).mkdir()
        (root / module / "__init__.py").write_text("")
