"""A worker process for the tests: `python -P worker_proc.py URL CONCURRENCY POLL`.

The real `run_worker` (SIGTERM drain included) with the test's `effect` action; the lease
comes from `$SAGACTL_LEASE`. Prints its stats as one JSON line when it stops.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from effects import ACTIONS
from sagactl.engine.worker import run_worker


async def main(url: str, concurrency: int, poll: float) -> None:
    stats = await run_worker(url, concurrency=concurrency, actions=ACTIONS, poll=poll, grace=10)
    print(
        json.dumps(
            {
                "claimed": stats.claimed,
                "finished": stats.finished,
                "lost": stats.lost,
                "handed_back": stats.handed_back,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
