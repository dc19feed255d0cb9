"""PostgreSQL restarted under running workers, on a private cluster this test starts itself.

The cluster is `initdb`'d as the postgres user in a temporary directory, with its own port
and socket directory: the machine's shared server is never touched.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sagactl.engine.api import Engine
from sagactl.engine.events import EventKind
from sagactl.engine.store.postgres import PostgresStore

from .conftest import wait_for
from .effects import ACTIONS, chain_saga
from .test_workers import Workers, effects

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class Cluster:
    """A throwaway PostgreSQL cluster owned by the postgres user."""

    def __init__(self) -> None:
        initdb, self.pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if initdb is None or self.pg_ctl is None or os.geteuid() != 0:
            pytest.skip("needs initdb/pg_ctl and root (to run them as the postgres user)")
        self.root = Path(tempfile.mkdtemp(prefix="sagactl-pg-"))
        shutil.chown(self.root, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data = self.root / "data"
        self._as_postgres(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def ctl(self, *command: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        assert self.pg_ctl is not None
        self._as_postgres(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-m",
            "fast",
            *command,
        )

    def remove(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.pg_ctl),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    private = Cluster()
    try:
        private.ctl("start")
        yield private
    finally:
        private.remove()


class TestServerRestart:
    async def test_workers_reconnect_and_every_run_ends(
        self, cluster: Cluster, tmp_path: Path
    ) -> None:
        """Restart mid-run: workers reconnect, every run ends, no action done without its row."""
        saga = chain_saga(("a", 0.2), ("b", 0.2), ("c", 0.2))
        workers = Workers(cluster.url, tmp_path)
        try:
            async with Engine(cluster.url, actions=ACTIONS) as engine:
                ids = [await engine.start(saga) for _ in range(20)]
            procs = [workers.start(concurrency=5) for _ in range(2)]

            def busy() -> bool:
                return len(workers.started()) >= 10

            await wait_for(_sync(busy), within=60)
            cluster.ctl("restart")
            async with PostgresStore(cluster.url) as store:

                async def all_ended() -> bool:
                    runs = await store.list_runs()
                    return all(r.state in ("succeeded", "compensated") for r in runs)

                await wait_for(all_ended, within=90, every=0.25)
                done = {(r, a) for r, a, _ in await effects(store)}
                runs = {r.run_id: r.state for r in await store.list_runs()}
                marked = set()
                for run_id in ids:
                    for record in await store.read_log(run_id):
                        if record.kind == EventKind.ACTION_SUCCEEDED:
                            marked.add((run_id, record.action))
                rows = await effects(store)
            for proc in procs:
                assert workers.stop(proc) == 0
        finally:
            workers.close()
        assert sorted(runs) == sorted(ids)
        assert marked <= done  # nothing marked done without its effect (its output)
        assert len(rows) == len(done)  # and no effect twice
        assert "succeeded" in runs.values()


def _sync(check: object) -> object:
    async def ask() -> object:
        return check()  # type: ignore[operator]

    return ask
