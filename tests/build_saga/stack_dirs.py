"""Where the test stack stores live, and the sweep of those a killed session left behind.

A session killed midway (Ctrl-C twice, a CI timeout) never reaches the fixture's cleanup,
and its store is gigabytes with overlay mounts. Each store records the pid of the process
that made it in its name (so there is no moment when a store has no owner); a later
session removes the stores whose process is gone."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PREFIX = "sagactl-stack-store-"


def release_mounts(root: Path) -> None:
    """Unmounts what buildah left mounted under `root` (overlay `merged` dirs of working
    containers), deepest first, so the tree can be removed."""

    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _owner_alive(root: Path) -> bool:
    owner = root.name.removeprefix(PREFIX).split("-", 1)[0]
    if not owner.isdigit():
        return False  # made before stores named their owner
    pid = int(owner)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_abandoned(parent: Path) -> list[Path]:
    """Removes the stack stores under `parent` whose owning process is gone."""

    removed = []
    for root in sorted(parent.glob(PREFIX + "*")):
        if not root.is_dir() or _owner_alive(root):
            continue
        release_mounts(root)
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


def make_owned(parent: Path) -> Path:
    """A new stack store directory under `parent`, owned by this process."""

    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
