"""Run as a script: stage the tar arriving on stdin with sagactl's StagingArea, print JSON.

Prints `ready` once imported (so the parent starts the clock only when bytes can flow), then
one JSON line with size, sha256 and this process's peak RSS once the upload is staged. The
peak is VmHWM from /proc: it belongs to the address space made at exec, so unlike
`ru_maxrss` it does not count the (large) pytest process this one was forked from. Exit 3
when this checkout has no staging code yet.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(directory: str, stream_id: str) -> int:
    try:
        from sagactl.actions.build_from_tar.staging import StagingArea
    except ImportError as exc:
        print(f"no staging code: {exc}", file=sys.stderr)
        return 3
    area = StagingArea(Path(directory))
    print("ready", flush=True)
    staged = area.stage_file(stream_id, sys.stdin.buffer)
    result = {"size": staged.size, "sha256": staged.sha256, "path": str(staged.path)}
    print(json.dumps({**result, "peak_rss_kb": _peak_rss_kb()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
