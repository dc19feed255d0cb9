"""definitions/build-from-tar.yaml: it compiles; its DAG follows from the data each action needs."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from sagactl.engine.cli.definition_commands import _catalog
from sagactl.engine.compiler import load_saga_file

DEFINITION = Path(str(resources.files("sagactl.definitions").joinpath("build-from-tar.yaml")))


@pytest.fixture(scope="module")
def saga(catalog):
    return load_saga_file(DEFINITION, catalog)


class TestBuildFromTar:
    def test_schema_comment_first(self) -> None:
        """The first line points yaml-language-server at the shipped schema, which exists."""
        first = DEFINITION.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=")
        target = DEFINITION.parent / first.split("$schema=", 1)[1]
        assert target.resolve().is_file()

    def test_layers(self, saga) -> None:
        """Independent work starts at once; each layer waits only for the data it needs."""
        assert saga.name == "build-from-tar"
        assert saga.layers() == (
            ("get_next_version", "launch_buildkit", "receive_tar", "resolve_cluster_ip"),
            ("load_config",),
            ("detect_stack", "parse_services"),
            ("build_image",),
            ("create_version",),
            ("start_sandboxes",),
            ("set_active_version",),
            ("stop_old_sandboxes",),
        )

    def test_no_wait_for_upload(self, saga) -> None:
        """resolve_cluster_ip and get_next_version do not wait for the upload."""
        assert saga.ancestors("resolve_cluster_ip") == frozenset()
        assert saga.ancestors("get_next_version") == frozenset()

    def test_load_config_waits_only_for_receive_tar(self, saga) -> None:
        """load_config needs the unpacked source, nothing else."""
        assert saga.dependencies("load_config") == {"receive_tar"}

    def test_detect_stack_and_parse_services(self, saga) -> None:
        """detect_stack and parse_services both need source and config only: side by side."""
        assert saga.dependencies("detect_stack") == {"receive_tar", "load_config"}
        assert saga.dependencies("parse_services") == {"receive_tar", "load_config"}
        assert "detect_stack" not in saga.ancestors("parse_services")
        assert "parse_services" not in saga.ancestors("detect_stack")

    def test_build_image_inputs(self, saga) -> None:
        """build_image waits for source, stack, config, services (its entrypoint), version,
        builder and cluster address."""
        assert saga.dependencies("build_image") == {
            "receive_tar",
            "load_config",
            "detect_stack",
            "parse_services",
            "get_next_version",
            "launch_buildkit",
            "resolve_cluster_ip",
        }

    def test_pivot_and_after(self, saga) -> None:
        """set_active_version is the only pivot, after the new version's sandboxes started
        healthy (compensable: stopped again); stop_old_sandboxes runs after it, irreversibly."""
        assert saga.pivots() == ("set_active_version",)
        assert saga.dependencies("set_active_version") == {"create_version", "start_sandboxes"}
        assert "create_version" in saga.dependencies("start_sandboxes")
        assert saga.actions["start_sandboxes"].compensable is True
        assert "set_active_version" in saga.dependencies("stop_old_sandboxes")
        assert saga.actions["stop_old_sandboxes"].compensable is False

    def test_timeouts_and_retry(self, saga) -> None:
        """Defaults apply where an action sets nothing; long steps get long timeouts."""
        assert saga.actions["load_config"].timeout == 600.0
        assert saga.actions["build_image"].timeout == 3600.0
        assert saga.actions["load_config"].retry.attempts == 3
        assert saga.actions["stop_old_sandboxes"].retry.attempts == 10

    def test_compiles_with_installed_actions(self) -> None:
        """With the real build.* actions installed, the shipped file compiles against them."""
        catalog = _catalog()
        if catalog.info("build.receive_tar") is None:
            pytest.skip("sagactl.actions.build_from_tar is not installed in this tree yet")
        assert len(load_saga_file(DEFINITION, catalog)) == 12  # the seed's eleven + start

    def test_rollback_reuses_the_actions(self) -> None:
        """rollback.yaml: start the chosen version, then the pivot, then stop the others,
        with the same build.* actions."""
        catalog = _catalog()
        if catalog.info("build.start_sandboxes") is None:
            pytest.skip("sagactl.actions.build_from_tar is not installed in this tree yet")
        rollback = load_saga_file(DEFINITION.parent / "rollback.yaml", catalog)
        assert rollback.pivots() == ("set_active_version",)
        assert rollback.layers() == (
            ("resolve_version",),
            ("start_sandboxes",),
            ("set_active_version",),
            ("stop_old_sandboxes",),
        )
        uses = {name: action.uses for name, action in rollback.actions.items()}
        assert uses["start_sandboxes"] == "build.start_sandboxes"
        assert uses["stop_old_sandboxes"] == "build.stop_old_sandboxes"
