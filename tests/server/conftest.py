"""Fixtures of the server tests: a base image, and `sagactl serve` processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The helpers next to this file, and tars.py of the build tests, are imported by name.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "build_saga"))

from leftovers import stop_leftover_sandboxes
from servetools import Server


@pytest.fixture(autouse=True)
def _no_leftover_sandboxes(tmp_path: Path) -> Iterator[None]:
    """The apps a test's builds deployed are stopped after it (they outlive the server)."""
    yield
    stop_leftover_sandboxes(tmp_path)


@pytest.fixture(scope="session")
def busybox_oci(tmp_path_factory: pytest.TempPathFactory) -> str:
    from sagactl.plugins.builders.baseimage import make_oci_base

    return make_oci_base(tmp_path_factory.mktemp("base") / "busybox")


@pytest.fixture
def server_env(tmp_path: Path, busybox_oci: str) -> dict[str, str]:
    """The oci builder (no buildah needed), a store and build directory of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    return {
        **env,
        "SAGACTL_BUILD_DIR": str(tmp_path / "build"),
        "SAGACTL_DB": f"sqlite://{tmp_path / 'sagactl.db'}",
        "SAGACTL_BUILDER": "oci",
        "SAGACTL_CLUSTER_HOST": "localhost",
        "SAGACTL_BASE_IMAGE_PYTHON": busybox_oci,
        "SAGACTL_BASE_IMAGE_STATIC": busybox_oci,
        "SAGACTL_STOP_GRACE": "3",
        "SAGACTL_RUNTIME": "local",
        "SAGACTL_LOCAL_AS_ROOT": "1",
    }


@pytest.fixture
def make_server(tmp_path: Path, server_env: dict[str, str]) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(*args: str, **env: str) -> Server:
        server = Server({**server_env, **env}, list(args), tmp_path)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server().start()
