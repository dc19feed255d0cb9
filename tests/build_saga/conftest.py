"""Fixtures for the build tests: staging areas, SQL transactions on real databases."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

# The helpers next to this file (tars.py) are imported by name by the test modules.
sys.path.insert(0, str(Path(__file__).parent))

from leftovers import stop_leftover_sandboxes
from sagactl.actions.build_from_tar.staging import StagingArea
from sagactl.actions.build_from_tar.tarcheck import StagingLimits
from sagactl.engine.tracing import NOOP_TRACER
from stack_dirs import make_owned, release_mounts, sweep_abandoned


@pytest.fixture
def area(tmp_path: Path) -> StagingArea:
    return StagingArea(tmp_path / "staging", StagingLimits())


class Db:
    """A real database for platform records: each `transaction()` opens the run store
    (which applies the build migrations) and is one `Store.transaction()` on it."""

    def __init__(self, url: str) -> None:
        self.url = url

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        from sagactl.engine import open_store

        async with open_store(self.url) as store, store.transaction() as tx:
            yield tx


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Db:
    return Db(f"sqlite://{tmp_path / 'records.db'}")


PG_URL = os.environ.get("SAGACTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_db() -> Iterator[Db]:
    """A fresh database named after this branch on the test server, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    name = f"build_records_{os.getpid()}"
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield Db(f"{base}/{name}")
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def busybox_oci(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox base image as an OCI layout, made offline once per session."""
    from sagactl.plugins.builders.baseimage import make_oci_base

    return make_oci_base(tmp_path_factory.mktemp("base") / "busybox")


@pytest.fixture(scope="session")
def buildah_storage(
    tmp_path_factory: pytest.TempPathFactory, busybox_oci: str
) -> Iterator[dict[str, Path]]:
    """A private buildah store (vfs) holding localhost/sagactl/busybox:latest."""
    import shutil

    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed")
    from sagactl.plugins.builders.baseimage import buildah_args

    root = tmp_path_factory.mktemp("buildah")
    storage = {"storage_root": root / "root", "run_root": root / "run"}
    command = buildah_args(storage_root=storage["storage_root"], run_root=storage["run_root"])
    pulled = subprocess.run(
        [*command, "pull", "--quiet", busybox_oci], check=True, capture_output=True, text=True
    )
    subprocess.run(
        [*command, "tag", pulled.stdout.strip(), "localhost/sagactl/busybox:latest"], check=True
    )
    yield storage
    # vfs layers are plain directories owned by root: remove them with buildah's help first.
    subprocess.run([*command, "rmi", "--all", "--force"], capture_output=True, check=False)


class StandInContext:
    """ActionContext for calling actions directly, without the engine's scheduler: a real
    SQLite transaction per `transaction()`, checkpoints and progress kept in memory."""

    def __init__(self, db: Any, deps: Any, *, run_id: str = "run-1", action: str = "a") -> None:
        import structlog

        self.db = db
        self.deps = deps
        self.run_id = run_id
        self.action = action
        self.attempt = 1
        self.last_checkpoint: Any = None
        self.checkpoints: list[Any] = []
        self.events: list[tuple[float | None, str, int | None]] = []
        self.pinned = False
        """Whether the action pinned the run to this node (`pin_to_node`)."""
        self.log = structlog.get_logger().bind(run_id=run_id, action=action)
        self.tracer = NOOP_TRACER

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}/{self.action}"

    def progress(
        self, fraction: float | None, message: str = "", *, bytes: int | None = None
    ) -> None:
        self.events.append((fraction, message, bytes))

    async def checkpoint(self, data: Any) -> None:
        self.checkpoints.append(data)

    def transaction(self) -> Any:
        return self.db.transaction()

    async def pin_to_node(self) -> None:
        self.pinned = True

    def rerun(self) -> StandInContext:
        """The context of the next attempt after a crash: the last checkpoint handed back."""
        again = StandInContext(self.db, self.deps, run_id=self.run_id, action=self.action)
        again.attempt = self.attempt + 1
        again.last_checkpoint = self.checkpoints[-1] if self.checkpoints else None
        return again


@pytest.fixture
def build_settings(tmp_path: Path, busybox_oci: str) -> Any:
    from sagactl.actions.build_from_tar.cluster import ClusterSettings
    from sagactl.actions.build_from_tar.settings import BuildSettings
    from sagactl.plugins.builders.base import DEFAULT_BASE_IMAGES

    return BuildSettings(
        state_dir=tmp_path / "state",
        cluster=ClusterSettings(host="localhost"),
        builder="oci",
        base_images={**DEFAULT_BASE_IMAGES, "python": busybox_oci, "static": busybox_oci},
        stop_grace=2.0,
        # Host processes (python-web needs the host's python3 until stack bases exist);
        # the runc runtime has tests of its own (test_runc_runtime.py, test_deploy.py).
        runtime="local",
        local_as_root=True,
        health_timeout=20.0,
    )


@pytest.fixture
def deps(build_settings: Any) -> Any:
    from sagactl.actions.build_from_tar.settings import BuildSettings
    from sagactl.actions.build_from_tar.streams import StreamRegistry
    from sagactl.engine import Dependencies

    container = Dependencies()
    container.provide(BuildSettings, build_settings)
    container.provide(StreamRegistry, StreamRegistry())
    return container


@pytest.fixture
def cli_env(tmp_path: Path, busybox_oci: str) -> dict[str, str]:
    """Environment for a real `sagactl` process: its own store, build dir, oci builder."""
    return {
        **os.environ,
        "SAGACTL_BUILD_DIR": str(tmp_path / "state"),
        "SAGACTL_DB": f"sqlite://{tmp_path / 'sagactl.db'}",
        "SAGACTL_BUILDER": "oci",
        "SAGACTL_CLUSTER_HOST": "localhost",
        "SAGACTL_BASE_IMAGE_PYTHON": busybox_oci,
        "SAGACTL_BASE_IMAGE_STATIC": busybox_oci,
        "SAGACTL_STOP_GRACE": "3",
        "SAGACTL_RUNTIME": "local",
        "SAGACTL_LOCAL_AS_ROOT": "1",
    }


@pytest.fixture(autouse=True)
def _no_leftover_sandboxes(tmp_path: Path) -> Iterator[None]:
    """Whatever a test leaves running is killed after it (tests stay independent)."""
    yield
    stop_leftover_sandboxes(tmp_path)


def _storage_driver(root: Path) -> str:
    """overlay when buildah can use it here (much faster than vfs for big bases), else vfs."""

    probe = subprocess.run(
        [
            "buildah",
            "--storage-driver",
            "overlay",
            "--root",
            str(root / "probe"),
            "--runroot",
            str(root / "probe-run"),
            "images",
        ],
        capture_output=True,
        check=False,
    )
    return "overlay" if probe.returncode == 0 else "vfs"


@pytest.fixture(scope="session")
def stack_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A buildah store where the stack bases (bases.py) are made once per session.

    $SAGACTL_TEST_BASE_STORE keeps it across sessions (a CI cache dir); without it the
    store is the session's own, on disk (gigabytes: not on the tmpfs tests/conftest.py
    puts the rest on), and its containers, mounts and files are removed at the end (an
    overlay mount left in a temp dir breaks every later session's cleanup)."""
    import shutil

    for tool in ("buildah", "runc", "mmdebstrap", "slirp4netns"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/setup)")
    kept = os.environ.get("SAGACTL_TEST_BASE_STORE")
    disk = os.environ.get("SAGACTL_TEST_DISK_TMP") or str(tmp_path_factory.getbasetemp())
    if kept:
        root = Path(kept)
    else:
        sweep_abandoned(Path(disk))
        root = make_owned(Path(disk))
    root.mkdir(parents=True, exist_ok=True)
    driver = _storage_driver(root)
    store = {
        "storage_driver": driver,
        "storage_root": root / f"{driver}-root",
        "run_root": root / f"{driver}-run",
        "work_dir": root / "work",
    }
    try:
        yield store
    finally:
        subprocess.run(
            [
                "buildah",
                "--storage-driver",
                driver,
                "--root",
                str(store["storage_root"]),
                "--runroot",
                str(store["run_root"]),
                "rm",
                "--all",
            ],
            capture_output=True,
            check=False,
        )
        release_mounts(root)
        if not kept:
            shutil.rmtree(root, ignore_errors=True)
