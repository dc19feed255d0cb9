"""SQLite run ownership follows the database file, whatever name a process opens it by.

A real process owns a run through one name of the database; this test process looks at the
same file through another name (a symlink, a relative path, a bind-mounted directory) and
must see the run as held, never as an orphan that `resume --all` would take. Names that
cannot be resolved to one file (a hard link, a bind mount of the file alone) are refused.
After a SIGKILL of the owner the run is an orphan through every name: the check is real.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sagactl.engine.store import NewRun, RunBusy, StoreUnusable, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

UNFINISHED = ["queued", "running"]

OWNER = """
import sys, anyio
from sagactl.engine.store import NewRun, open_store

async def main() -> None:
    async with open_store(sys.argv[1]) as store:
        run = NewRun("r1", "demo", "h1", {"format": 1, "name": "demo", "actions": {}}, {})
        created = await store.create_run(run, claim=True)
        assert created.claim is not None
        print("owned", flush=True)
        await anyio.sleep(600)

anyio.run(main)
"""


@contextlib.contextmanager
def owner_process(url: str, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """A process that creates run r1 through `url` and holds it until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, url], cwd=cwd, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "owned"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def assert_held_then_orphaned(proc: subprocess.Popen[str], url: str) -> None:
    """Through `url`: the run is held while `proc` lives, an orphan once it is killed."""
    async with open_store(url) as store:
        assert await store.orphans(UNFINISHED) == []
        with pytest.raises(RunBusy):
            await store.claim("r1")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert await store.orphans(UNFINISHED) == ["r1"]
        claim = await store.claim("r1")
        assert claim.fence == 2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class TestSameFileOtherName:
    async def test_symlink(self, tmp_path: Path) -> None:
        """The owner opened the real file; the run is held through a symlink to it."""
        (tmp_path / "data").mkdir()
        real = tmp_path / "data" / "runs.db"
        link = tmp_path / "link.db"
        link.symlink_to(real)
        with owner_process(f"sqlite://{real}", tmp_path) as proc:
            await assert_held_then_orphaned(proc, f"sqlite://{link}")

    async def test_symlinked_directory(self, tmp_path: Path) -> None:
        """The owner opened through a symlinked directory; the run is held via the real one."""
        (tmp_path / "data").mkdir()
        (tmp_path / "alias").symlink_to(tmp_path / "data")
        with owner_process(f"sqlite://{tmp_path / 'alias' / 'runs.db'}", tmp_path) as proc:
            await assert_held_then_orphaned(proc, f"sqlite://{tmp_path / 'data' / 'runs.db'}")

    async def test_relative_path(self, tmp_path: Path) -> None:
        """The owner opened `data/runs.db` from its working directory; an absolute path
        and another relative one (`../data/runs.db` from elsewhere) see the run held."""
        (tmp_path / "data").mkdir()
        (tmp_path / "elsewhere").mkdir()
        with owner_process("data/runs.db", tmp_path) as proc:
            os.chdir(tmp_path / "elsewhere")  # pytest's monkeypatch would do as well
            try:
                async with open_store("../data/runs.db") as store:
                    with pytest.raises(RunBusy):
                        await store.claim("r1")
            finally:
                os.chdir(Path(__file__).parent)
            await assert_held_then_orphaned(proc, f"sqlite://{tmp_path / 'data' / 'runs.db'}")

    async def test_bind_mounted_directory(self, bind: BindMounts, tmp_path: Path) -> None:
        """The owner opened the database in a bind mount of its directory."""
        (tmp_path / "data").mkdir()
        (tmp_path / "mnt").mkdir()
        bind(tmp_path / "data", tmp_path / "mnt")
        with owner_process(f"sqlite://{tmp_path / 'mnt' / 'runs.db'}", tmp_path) as proc:
            await assert_held_then_orphaned(proc, f"sqlite://{tmp_path / 'data' / 'runs.db'}")


class TestSecondNamesRefused:
    async def test_hard_link(self, tmp_path: Path) -> None:
        """A database with a second hard link is refused through either name while the
        owner lives: no other name can take its run."""
        real = tmp_path / "runs.db"
        with owner_process(f"sqlite://{real}", tmp_path):
            os.link(real, tmp_path / "other.db")
            for name in ("other.db", "runs.db"):
                with pytest.raises(StoreUnusable, match="hard links"):
                    async with open_store(f"sqlite://{tmp_path / name}"):
                        pass

    async def test_bind_mounted_file(self, bind: BindMounts, tmp_path: Path) -> None:
        """A bind mount of the database file alone is refused; the real name still works."""
        real = tmp_path / "runs.db"
        with owner_process(f"sqlite://{real}", tmp_path) as proc:
            (tmp_path / "mnt.db").touch()
            bind(real, tmp_path / "mnt.db")
            with pytest.raises(StoreUnusable, match="bind-mounted"):
                async with open_store(f"sqlite://{tmp_path / 'mnt.db'}"):
                    pass
            await assert_held_then_orphaned(proc, f"sqlite://{real}")


class BindMounts:
    """`mount --bind`, undone after the test (needs root)."""

    def __init__(self) -> None:
        self.targets: list[Path] = []

    def __call__(self, source: Path, target: Path) -> None:
        done = subprocess.run(
            ["mount", "--bind", str(source), str(target)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"mount --bind is not allowed here: {done.stderr.strip()}")
        self.targets.append(target)

    def undo(self) -> None:
        for target in reversed(self.targets):
            subprocess.run(["umount", str(target)], check=True)


@pytest.fixture
def bind() -> Iterator[BindMounts]:
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    mounts = BindMounts()
    try:
        yield mounts
    finally:
        mounts.undo()


def test_new_run_shape() -> None:
    """The owner script's NewRun positional order still matches the dataclass."""
    run = NewRun("r1", "demo", "h1", {}, {})
    assert (run.run_id, run.saga, run.definition_hash) == ("r1", "demo", "h1")
