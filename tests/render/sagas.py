"""Compiled sagas built by hand for the renderer tests (no compiler involved)."""

from __future__ import annotations

from collections.abc import Iterable

from sagactl.engine import ActionSpec, CompiledSaga


def spec(
    name: str, deps: Iterable[str] = (), *, pivot: bool = False, compensable: bool = True
) -> ActionSpec:
    return ActionSpec(
        name=name,
        uses=f"build.{name}",
        depends_on=frozenset(deps),
        pivot=pivot,
        compensable=compensable,
    )


BUILD_ACTIONS = (
    spec("receive_tar"),
    spec("load_config", ["receive_tar"], compensable=False),
    spec("detect_stack", ["receive_tar", "load_config"], compensable=False),
    spec("resolve_cluster_ip", compensable=False),
    spec("launch_buildkit", ["resolve_cluster_ip"]),
    spec("get_next_version", compensable=False),
    spec(
        "build_image",
        ["receive_tar", "load_config", "detect_stack", "launch_buildkit", "get_next_version"],
    ),
    spec("parse_services", ["receive_tar", "load_config"], compensable=False),
    spec("create_version", ["build_image", "get_next_version", "parse_services"]),
    spec("set_active_version", ["create_version"], pivot=True),
    spec("stop_old_sandboxes", ["set_active_version"], compensable=False),
)

BUILD_STATES = {
    "receive_tar": "succeeded",
    "load_config": "succeeded",
    "detect_stack": "succeeded",
    "resolve_cluster_ip": "succeeded",
    "launch_buildkit": "compensated",
    "get_next_version": "succeeded",
    "build_image": "failed",
    "parse_services": "skipped",
    "create_version": "pending",
}
"""A build that failed in build_image and is compensating: every state but running."""


def build_saga(order: Iterable[ActionSpec] = BUILD_ACTIONS) -> CompiledSaga:
    """Shaped like build-from-tar: 11 actions, one pivot, six irreversible."""
    return CompiledSaga(
        name="build-from-tar",
        version=1,
        description="Build an uploaded tar into an image and make it the app's active version",
        actions={a.name: a for a in order},
    )


def saga(name: str, *actions: ActionSpec) -> CompiledSaga:
    return CompiledSaga(name=name, version=1, actions={a.name: a for a in actions})
