"""The loader's pieces in process: describing actions, registries, factory calls, folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs, PluginError
from sagactl.engine.action_plugins import ACTIONS, ActionRegistry, describe_action
from sagactl.engine.plugin_registry import Plugin, Registry, call_factory, factory_group
from sagactl.engine.plugins import DEFINITIONS, load_plugins, reset_plugins
from sagactl.engine.store.migrations import MIGRATIONS


class Echo(Action):
    """Echoes its input.

    More words that are not the summary.
    """

    input_schema = {"type": "object", "properties": {"text": {"type": "string"}}}

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return dict(inputs)

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        return None


class Undocumented(Action):
    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {}


class Abstractish(Action):
    """A base other actions share; naming it tells nothing about the schemas."""


class WithDeps(Echo):
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps


def _plugin(obj: Any, name: str = "t.echo", group: str = ACTIONS.name) -> Plugin[Any]:
    return Plugin(group, name, "tests:obj", "test-dist", "9.9", obj)


class TestDescribeAction:
    def test_class_gives_schemas_flag_and_summary(self) -> None:
        """An Action subclass is described from its attributes; the summary is the first line."""
        info = describe_action(_plugin(Echo))
        assert info.input_schema == Echo.input_schema
        assert info.output_schema == {"type": "object"}
        assert info.compensable is True
        assert info.description == "Echoes its input."
        assert (info.name, info.distribution, info.version) == ("t.echo", "test-dist", "9.9")

    def test_no_docstring_means_no_description(self) -> None:
        """Action's own docstring is not inherited as a description; no compensate: irreversible."""
        info = describe_action(_plugin(Undocumented))
        assert info.description == ""
        assert info.compensable is False

    def test_factory_annotated_with_the_class_is_not_called(self) -> None:
        """A factory whose return annotation names the class is described without a call."""
        calls: list[Dependencies] = []

        def factory(deps: Dependencies) -> Echo:
            calls.append(deps)
            return Echo()

        assert describe_action(_plugin(factory)).description == "Echoes its input."
        assert calls == []

    def test_action_class_attribute_is_used(self) -> None:
        """`factory.action_class` names the class when there is no useful annotation."""

        def factory(deps: Dependencies) -> Action:
            raise AssertionError("must not be called")

        factory.action_class = Echo  # type: ignore[attr-defined]
        assert describe_action(_plugin(factory)).input_schema == Echo.input_schema

    def test_abstract_annotation_falls_back_to_calling(self) -> None:
        """An annotation naming an abstract base is not trusted: the factory is called."""

        def factory(deps: Dependencies) -> Abstractish:
            return Undocumented()  # type: ignore[return-value]

        assert describe_action(_plugin(factory)).compensable is False

    def test_called_factory_gets_the_given_container(self) -> None:
        """The last-resort call passes the container the caller gave."""
        deps = Dependencies()
        seen: list[Dependencies] = []

        def factory(given: Dependencies):  # type: ignore[no-untyped-def]
            seen.append(given)
            return Echo()

        describe_action(_plugin(factory), deps)
        assert seen == [deps]

    @pytest.mark.parametrize(
        ("obj", "problem"),
        [
            (int, "names the class int, which is not an Action"),
            (42, "names a int, not an Action class or factory"),
            (lambda deps: "x", "has a factory that returned a str, not an Action"),
        ],
    )
    def test_wrong_objects_are_plugin_errors(self, obj: Any, problem: str) -> None:
        """Entry points naming the wrong thing give one error naming the distribution."""
        with pytest.raises(PluginError) as caught:
            describe_action(_plugin(obj))
        assert str(caught.value) == f"action 't.echo' from test-dist 9.9 {problem}"
        assert caught.value.distribution == "test-dist"

    def test_failing_factory_is_a_plugin_error_with_advice(self) -> None:
        """A factory that raises while being described: the error says how to avoid the call."""

        def factory(deps: Dependencies) -> Action:
            raise KeyError("database")

        with pytest.raises(PluginError, match="KeyError: 'database' \\(annotate its return type"):
            describe_action(_plugin(factory))

    def test_invalid_schema_is_a_plugin_error_with_its_place(self) -> None:
        """A schema Draft 2020-12 rejects is reported with the path inside it."""

        class Bad(Echo):
            output_schema = {"type": "object", "properties": {"n": {"minimum": "zero"}}}

        with pytest.raises(PluginError, match="unusable output_schema at 'properties/n/minimum': "
                           "not a valid JSON Schema: 'zero' is not of type 'number'"):  # fmt: skip
            describe_action(_plugin(Bad))

    def test_schema_that_is_not_an_object(self) -> None:
        """A schema that is not a mapping is refused."""

        class Listy(Echo):
            input_schema = ["type", "object"]  # type: ignore[assignment]

        with pytest.raises(PluginError, match="input_schema that is not a JSON object"):
            describe_action(_plugin(Listy))


class TestCallFactory:
    def test_class_taking_the_container_gets_it(self) -> None:
        """A class whose __init__ takes an argument is given the container."""
        deps = Dependencies()
        made = call_factory(WithDeps, deps)
        assert made.deps is deps

    def test_class_without_arguments_is_called_bare(self) -> None:
        """A class without __init__ arguments is instantiated without the container."""
        assert isinstance(call_factory(Echo, Dependencies()), Echo)

    def test_zero_argument_function_is_called_bare(self) -> None:
        """A function taking nothing is called with nothing."""
        assert call_factory(lambda: "made", Dependencies()) == "made"


class TestRegistry:
    def _registry(self) -> ActionRegistry:
        broken = PluginError(
            "action 't.gone' broke", group=ACTIONS.name, name="t.gone", distribution="d"
        )
        plugins = {"t.echo": _plugin(Echo), "t.plain": _plugin(Undocumented, "t.plain")}
        infos = {name: describe_action(plugin) for name, plugin in plugins.items()}
        return ActionRegistry(plugins, infos, [broken])

    def test_names_sorted_and_catalog_lookup(self) -> None:
        """names() is sorted; info() knows usable actions and nothing else."""
        registry = self._registry()
        assert registry.names() == ("t.echo", "t.plain")
        assert registry.info("t.echo") is not None
        assert registry.info("t.gone") is None
        assert "t.echo" in registry and "t.gone" not in registry

    def test_failed_name_raises_its_own_error(self) -> None:
        """get() of a name that failed to load raises the recorded error, not 'unknown'."""
        registry = self._registry()
        with pytest.raises(PluginError, match="broke"):
            registry.get("t.gone")
        assert registry.error_for("t.gone") is registry.errors[0]

    def test_create_returns_the_action(self) -> None:
        """create() builds the action from its class."""
        assert isinstance(self._registry().create("t.echo", Dependencies()), Echo)

    def test_create_refuses_what_is_not_an_action(self) -> None:
        """A factory that returns something other than its annotation says is a PluginError."""

        def factory(deps: Dependencies) -> Echo:
            return "surprise"  # type: ignore[return-value]

        plugin = _plugin(factory, "t.odd")
        registry = ActionRegistry({"t.odd": plugin}, {"t.odd": describe_action(plugin)}, [])
        with pytest.raises(PluginError, match="made a str, not an Action"):
            registry.create("t.odd", Dependencies())

    def test_unknown_kind_named_in_message(self) -> None:
        """An unknown name says what the group's plugins are called and lists the installed
        ones."""
        widgets = factory_group("tests.widgets", "widget")
        registry = Registry(widgets, {"oci": _plugin(dict, "oci", widgets.name)}, [])
        with pytest.raises(
            PluginError, match=r"no widget named 'x' is installed \(installed: oci\)"
        ):
            registry.create("x", Dependencies())


class TestDefinitionFolders:
    def test_sagactl_ships_its_definitions_folder(self) -> None:
        """sagactl's own `builtin` entry point resolves to the package's definitions folder."""
        reset_plugins()
        folder = load_plugins().definitions.get("builtin").obj
        assert isinstance(folder, Path)
        assert (folder / "__init__.py").is_file()
        assert folder.name == "definitions"

    def test_definitions_group_constant(self) -> None:
        """The group names are the documented ones."""
        assert DEFINITIONS.name == "sagactl.definitions"


MIGRATING_MODULE = """
from sagactl.engine.store import Migration

SQL = "CREATE TABLE acme_things (id TEXT PRIMARY KEY)"
steps = [Migration(1, {"sqlite": SQL, "postgresql": SQL})]
gappy = [Migration(2, {"sqlite": SQL, "postgresql": SQL})]
not_a_list = "CREATE TABLE nope (id TEXT)"


def made():
    raise RuntimeError("no migrations today")
"""

OPEN_STORE = """
import json, sys
import anyio
from sagactl.engine.plugins import load_plugins
from sagactl.engine.store import open_store


async def main():
    async with open_store(sys.argv[1]) as store:
        return await store.migrations_applied()

applied = anyio.run(main)
print(json.dumps({"applied": applied, "errors": [str(e) for e in load_plugins().errors]}))
"""


class TestMigrationPlugins:
    """`sagactl.migrations` entry points go through the registry like every other group:
    a broken one is left out with one error naming its distribution."""

    @pytest.fixture
    def installed(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
        info = tmp_path / "acme_tables-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tables\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(
            "[sagactl.migrations]\n"
            "acme = acme_tables:steps\n"
            "gappy = acme_tables:gappy\n"
            "text = acme_tables:not_a_list\n"
            "raising = acme_tables:made\n"
            "missing = acme_tables:nothing_here\n"
        )
        (tmp_path / "acme_tables.py").write_text(MIGRATING_MODULE)
        monkeypatch.syspath_prepend(str(tmp_path))
        reset_plugins()
        yield tmp_path
        reset_plugins()

    def test_broken_ones_are_collected_not_raised(self, installed: Path) -> None:
        """The good namespace loads; each broken one is one error naming the distribution."""
        registry = load_plugins().registry(MIGRATIONS)
        assert "acme" in registry.names()
        assert [m.version for m in registry.get("acme").obj] == [1]
        errors = {e.name: str(e) for e in registry.errors}
        assert sorted(errors) == ["gappy", "missing", "raising", "text"]
        for name, message in errors.items():
            assert message.startswith(f"migrations '{name}' from acme-tables 1.0 "), message
        assert "numbered 1..n without gaps" in errors["gappy"]
        assert "must be a list of Migration" in errors["text"]
        assert "RuntimeError: no migrations today" in errors["raising"]
        assert "failed to load (acme_tables:nothing_here)" in errors["missing"]
        assert set(errors) <= {e.name for e in load_plugins().errors}

    def test_a_store_opens_with_the_good_ones(self, installed: Path) -> None:
        """Opening a store applies the good plugin's tables and leaves the broken ones out."""
        done = subprocess.run(
            [sys.executable, "-c", OPEN_STORE, f"sqlite://{installed / 'runs.db'}"],
            env={**os.environ, "PYTHONPATH": str(installed)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        *logged, last = done.stdout.splitlines()  # structlog's default logger prints here
        report = json.loads(last)
        assert report["applied"]["acme"] == 1
        assert len([line for line in logged if "migrations left out" in line]) == 4
        assert "gappy" not in report["applied"]
        assert len([e for e in report["errors"] if "acme-tables" in e]) == 4


WIDGETS_MODULE = """
from collections.abc import Callable

from sagactl.engine.plugin_registry import Group, factory_group

WIDGETS: Group[Callable[..., dict[str, str]]] = factory_group("acme.widgets", "widget")
MISNAMED = factory_group("acme.other", "other")
NOT_A_GROUP = 42
OURS = factory_group("sagactl.actions", "action")


def gear(deps):
    return {"widget": "gear"}


NOT_A_FACTORY = "sprocket"
"""


class TestDeclaredGroups:
    """A package declares a group of its own in `sagactl.groups`; its plugins are then
    loaded, typed and reported like the engine's."""

    @pytest.fixture
    def installed(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
        info = tmp_path / "acme_widgets-2.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-widgets\nVersion: 2.0\n")
        (info / "entry_points.txt").write_text(
            "[sagactl.groups]\n"
            "acme.widgets = acme_widgets:WIDGETS\n"
            "acme.misnamed = acme_widgets:MISNAMED\n"
            "acme.number = acme_widgets:NOT_A_GROUP\n"
            "sagactl.actions = acme_widgets:OURS\n"
            "[acme.widgets]\n"
            "gear = acme_widgets:gear\n"
            "sprocket = acme_widgets:NOT_A_FACTORY\n"
        )
        (tmp_path / "acme_widgets.py").write_text(WIDGETS_MODULE)
        monkeypatch.syspath_prepend(str(tmp_path))
        reset_plugins()
        yield tmp_path
        reset_plugins()

    def test_declared_group_loads_and_creates(self, installed: Path) -> None:
        """The group's registry makes its plugins; the bad one is an error of its kind."""
        from acme_widgets import WIDGETS  # type: ignore[import-not-found]

        widgets = load_plugins().registry(WIDGETS)
        assert widgets.names() == ("gear",)
        assert widgets.create("gear", Dependencies()) == {"widget": "gear"}
        (error,) = widgets.errors
        assert str(error) == "widget 'sprocket' from acme-widgets 2.0 names a str, not a factory"

    def test_errors_of_declared_groups_are_everyones_errors(self, installed: Path) -> None:
        """`load_plugins().errors` walks the declared groups too, and names each bad
        declaration once; the engine's own groups cannot be redeclared."""
        plugins = load_plugins()
        assert "acme.widgets" in [group.name for group in plugins.groups()]
        assert [g.name for g in plugins.groups()].count("sagactl.actions") == 1
        by_name = {(e.group, e.name): str(e) for e in plugins.errors}
        assert "names a str, not a factory" in by_name[("acme.widgets", "sprocket")]
        assert (
            "names the group 'acme.other', not 'acme.misnamed'"
            in by_name[("sagactl.groups", "acme.misnamed")]
        )
        assert "names a int, not a Group" in by_name[("sagactl.groups", "acme.number")]
        assert (
            "declares a group of the engine's own" in by_name[("sagactl.groups", "sagactl.actions")]
        )
