"""Plugin discovery against real, pip-installed distributions: a good, a broken, a clashing one."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import PluginEnv

pytestmark = pytest.mark.slow

BROKEN_ACTIONS = ["broken.import", "broken.needs-deps", "broken.not-action", "broken.schema"]
BROKEN_COMMANDS = ["broken-cmd", "broken-notcmd"]


@pytest.fixture(scope="session")
def found(plugin_env: PluginEnv) -> dict[str, Any]:
    return plugin_env.probe()


@pytest.fixture(scope="session")
def found_with_clash(plugin_env: PluginEnv) -> dict[str, Any]:
    return plugin_env.probe(dup=True)


def _errors(report: dict[str, Any], group: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in report["errors"] if e["group"] == group}


class TestLoadPlugins:
    def test_good_plugin_actions_listed_with_their_distribution(
        self, found: dict[str, Any]
    ) -> None:
        """Every action of acme-saga-plugin is found, with distribution name and version."""
        acme = {n: a for n, a in found["actions"].items() if n.startswith("acme.")}
        assert sorted(acme) == ["acme.audit", "acme.notify", "acme.page", "acme.ping"]
        for action in acme.values():
            assert (action["distribution"], action["version"]) == ("acme-saga-plugin", "1.2.0")

    def test_schemas_compensation_and_description_come_from_the_class(
        self, found: dict[str, Any]
    ) -> None:
        """ActionInfo carries the class's schemas, compensable flag and description."""
        notify = found["actions"]["acme.notify"]
        assert notify["input_schema"]["required"] == ["url"]
        assert notify["output_schema"]["properties"] == {"status": {"type": "integer"}}
        assert notify["compensable"] is True
        assert notify["description"] == "Posts a notification."
        assert found["actions"]["acme.page"]["compensable"] is False
        assert found["actions"]["acme.audit"]["description"] == "Writes an audit record"

    def test_factories_are_called_only_when_nothing_else_names_the_class(
        self, found: dict[str, Any]
    ) -> None:
        """A class, an annotated factory and `action_class` need no call; a bare factory does."""
        assert found["factory_calls_to_describe"] == ["acme.ping"]
        assert found["actions"]["acme.ping"]["output_schema"]["properties"] == {
            "pong": {"type": "boolean"}
        }

    def test_each_broken_action_is_one_error_naming_its_distribution(
        self, found: dict[str, Any]
    ) -> None:
        """Import failure, wrong return type, invalid schema, missing dependency: one error each."""
        errors = _errors(found, "sagactl.actions")
        assert sorted(errors) == BROKEN_ACTIONS
        for name, error in errors.items():
            assert error["distribution"] == "acme-broken-plugin"
            assert error["message"].startswith(f"action '{name}' from acme-broken-plugin 0.3.0 ")
            assert "\n" not in error["message"]
        assert "RuntimeError: acme_broken cannot start" in errors["broken.import"]["message"]
        assert "returned a str, not an Action" in errors["broken.not-action"]["message"]
        assert "properties/n/type" in errors["broken.schema"]["message"]
        assert "no Clock was provided" in errors["broken.needs-deps"]["message"]
        assert not set(BROKEN_ACTIONS) & set(found["actions"])

    def test_broken_commands_are_errors_too(self, found: dict[str, Any]) -> None:
        """The command whose module fails to import is reported; the good ones are loaded."""
        assert sorted(_errors(found, "sagactl.commands")) == ["broken-cmd"]
        assert {"acme-greet", "acme-hello", "broken-notcmd"} <= set(found["commands"])

    def test_container_is_handed_to_factories(self, found: dict[str, Any]) -> None:
        """create() calls the factory with the container; a class is instantiated."""
        assert found["create_notify"] == {"ok": {"class": "Notify", "client_is_provided": True}}
        assert found["create_page"] == {"ok": "Page"}
        assert found["builder"] == {"ok": {"builder": "acme", "same_deps": True}}

    def test_factory_failure_at_creation_is_a_plugin_error(self, found: dict[str, Any]) -> None:
        """A factory whose dependency is missing gives a PluginError naming the distribution."""
        error = found["create_notify_without_deps"]["error"]
        assert error["distribution"] == "acme-saga-plugin"
        assert "could not be created: MissingDependency: no HttpClient" in error["message"]

    def test_unknown_action_lists_the_installed_ones(self, found: dict[str, Any]) -> None:
        """Asking for an action nobody registered says so and lists what is installed."""
        message = found["create_unknown"]["error"]["message"]
        assert message.startswith("no action named 'acme.nope' is installed (installed: ")
        assert "acme.notify" in message

    def test_given_container_describes_factories_that_need_it(self, found: dict[str, Any]) -> None:
        """With the dependency provided, the factory that needed it is described, not an error."""
        assert found["with_clock"]["needs_deps_info"] is True
        assert "broken.needs-deps" not in found["with_clock"]["errors"]
        assert found["with_clock"]["shared"] is False

    def test_definition_folders_resolved(self, found: dict[str, Any]) -> None:
        """`sagactl.definitions` entry points become folders: sagactl's own and acme's."""
        acme = found["definitions"]["acme"]
        assert acme["distribution"] == "acme-saga-plugin"
        assert acme["folder"].endswith("acme_saga/definitions")
        assert acme["files"] == ["acme-notify.yaml"]
        assert found["definitions"]["builtin"]["distribution"] == "sagactl"

    def test_function_giving_a_folder_resolves_the_same_everywhere(
        self, found: dict[str, Any]
    ) -> None:
        """An entry point naming a function that returns a folder is that folder for the
        registry, for `definition_folders()` (the CLI, build_from_tar) and for SagaRegistry."""
        folder = found["definitions"]["acme-more"]["folder"]
        assert folder.endswith("acme_saga/more_definitions")
        assert found["definitions"]["acme-more"]["files"] == ["acme-page-oncall.yaml"]
        assert folder in found["definition_folders"]
        assert found["definitions"]["acme"]["folder"] in found["definition_folders"]
        assert found["saga_paths"]["acme-page-oncall"] == f"{folder}/acme-page-oncall.yaml"

    def test_loaded_once_per_process_until_reset(self, found: dict[str, Any]) -> None:
        """load_plugins() returns the cached result; reset_plugins() forgets it."""
        assert found["cached"] is True
        assert found["fresh_after_reset"] is True


class TestClash:
    def test_clash_is_one_error_naming_both_distributions(
        self, found_with_clash: dict[str, Any]
    ) -> None:
        """Two distributions claiming acme.notify give one error naming both."""
        clash = _errors(found_with_clash, "sagactl.actions")["acme.notify"]
        assert clash["distributions"] == ["acme-dup-plugin", "acme-saga-plugin"]
        assert "acme-dup-plugin 0.1.0" in clash["message"]
        assert "acme-saga-plugin 1.2.0" in clash["message"]

    def test_clashing_name_is_unusable_and_says_why(self, found_with_clash: dict[str, Any]) -> None:
        """The clashing name has no info, and creating it raises the clash error."""
        assert found_with_clash["notify_info"] is False
        assert found_with_clash["notify_error_for"]["distributions"] == [
            "acme-dup-plugin",
            "acme-saga-plugin",
        ]
        assert found_with_clash["create_notify"]["error"] == found_with_clash["notify_error_for"]

    def test_everything_else_still_loads(self, found_with_clash: dict[str, Any]) -> None:
        """The other actions of both distributions are still there."""
        actions = found_with_clash["actions"]
        assert {"acme.audit", "acme.page", "acme.ping", "dup.only"} <= set(actions)
        assert actions["dup.only"]["distribution"] == "acme-dup-plugin"

    def test_command_clash_reported(self, found_with_clash: dict[str, Any]) -> None:
        """Two distributions claiming the acme-hello command: an error, and no such command."""
        clash = _errors(found_with_clash, "sagactl.commands")["acme-hello"]
        assert clash["distributions"] == ["acme-dup-plugin", "acme-saga-plugin"]
        assert "acme-hello" not in found_with_clash["commands"]
