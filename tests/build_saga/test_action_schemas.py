"""The eleven build actions: registered, valid schemas, compensable as build-from-tar wants."""

from __future__ import annotations

from importlib.metadata import entry_points

import jsonschema
import pytest
from sagactl.engine import Action, Dependencies

EXPECTED = {
    "build.receive_tar": True,
    "build.load_config": False,
    "build.detect_stack": False,
    "build.resolve_cluster_ip": False,
    "build.launch_buildkit": True,
    "build.get_next_version": False,
    "build.build_image": True,
    "build.parse_services": False,
    "build.create_version": True,
    "build.set_active_version": True,
    "build.stop_old_sandboxes": False,
}
OUTPUTS = {
    "build.receive_tar": {"path", "sha256", "size", "source_dir"},
    "build.load_config": {"config"},
    "build.detect_stack": {"stack"},
    "build.resolve_cluster_ip": {"ip", "host"},
    "build.launch_buildkit": {"builder", "endpoint"},
    "build.get_next_version": {"version", "number", "artifact_id"},
    "build.build_image": {"image", "digest", "services"},
    "build.parse_services": {"services"},
    "build.create_version": {"version_id"},
    "build.set_active_version": {"previous_version", "active_version", "activated"},
    "build.stop_old_sandboxes": {"stopped"},
}


def _actions() -> dict[str, Action]:
    found = {ep.name: ep for ep in entry_points(group="sagactl.actions")}
    return {name: found[name].load()(Dependencies()) for name in EXPECTED}


class TestBuildActionCatalogue:
    def test_all_eleven_registered(self) -> None:
        """Every build.* name the definition uses is an installed entry point."""
        names = {ep.name for ep in entry_points(group="sagactl.actions")}
        assert set(EXPECTED) <= names

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_schemas_are_valid_draft_2020_12(self, name: str) -> None:
        """Input and output schemas are valid Draft 2020-12 object schemas."""
        action = _actions()[name]
        for schema in (action.input_schema, action.output_schema):
            jsonschema.Draft202012Validator.check_schema(schema)
            assert schema["type"] == "object"

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_outputs_declared(self, name: str) -> None:
        """Each action declares exactly the outputs the definition references, and no others."""
        schema = _actions()[name].output_schema
        assert set(schema["properties"]) == OUTPUTS[name]
        assert schema["additionalProperties"] is False

    @pytest.mark.parametrize(("name", "compensable"), sorted(EXPECTED.items()))
    def test_compensability(self, name: str, compensable: bool) -> None:
        """Only the actions build-from-tar compensates override `compensate`."""
        assert _actions()[name].compensable() is compensable
