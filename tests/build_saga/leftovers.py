"""What a test may leave running: the sandboxes its builds started (runc containers and
local processes). Deployed apps outlive the build by design, so tests stop them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from sagactl.plugins.runtimes.local import process_start
from stack_dirs import release_mounts


def stop_leftover_sandboxes(root: Path) -> list[str]:
    """Kills every sandbox a test left under `root` (runc containers in any runtime state
    dir, local processes by their handle files); returns what it had to kill."""
    killed: list[str] = []
    for state in root.glob("**/sandboxes/runc"):
        if shutil.which("runc") is None:
            break
        listed = subprocess.run(
            ["runc", "--root", str(state), "list", "-q"], capture_output=True, text=True
        )
        for container in listed.stdout.split():
            subprocess.run(["runc", "--root", str(state), "delete", "--force", container])
            killed.append(container)
    for handle in root.glob("**/sandboxes/local/*.json"):
        known = json.loads(handle.read_text())
        if process_start(int(known["pid"])) == str(known["start"]):
            os.killpg(int(known["pid"]), signal.SIGKILL)
            killed.append(handle.stem)
    release_mounts(root)  # image roots (overlay mounts) would block the temp dir's removal
    return killed
