"""A benchmark worker process: `python -P worker_proc.py URL CONCURRENCY` with the no-op action."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent.parent))

from sagactl.engine.worker import run_worker

from benchmarks.workloads import NOOP_USES, NoopAction

if __name__ == "__main__":
    anyio.run(
        lambda: run_worker(
            sys.argv[1], concurrency=int(sys.argv[2]), actions={NOOP_USES: NoopAction()}, poll=1
        )
    )
