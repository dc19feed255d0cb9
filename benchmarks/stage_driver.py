"""Run as a script: stage the tar arriving on stdin with sagactl's StagingArea, print JSON.

Prints `ready` once imported (so the parent starts the clock only when bytes can flow), then
one JSON line with size and sha256 when the upload is staged. Exit 3 when this checkout has
no staging code yet.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(directory: str, stream_id: str) -> int:
    try:
        from sagactl.actions.build.staging import StagingArea
    except ImportError as exc:
        print(f"no staging code: {exc}", file=sys.stderr)
        return 3
    area = StagingArea(Path(directory))
    print("ready", flush=True)
    staged = area.stage_file(stream_id, sys.stdin.buffer)
    print(json.dumps({"size": staged.size, "sha256": staged.sha256, "path": str(staged.path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
