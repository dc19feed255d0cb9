"""Makes COUNT runs of a saga file stop half done, as if their owner died: run as a script.

`python half_done.py DB SAGA COUNT`: starts COUNT runs at once in this process and prints
`ready` once every run has its first action done and its second one's intent durably
logged (the second action holds while its `hold` file exists); the test then SIGKILLs it.
"""

from __future__ import annotations

import functools
import sys

import anyio
from sagactl.engine import Engine, load_plugins, load_saga_file
from sagactl.engine.events import Event, EventKind


async def main(db: str, saga_file: str, count: int) -> None:
    saga = load_saga_file(saga_file, load_plugins().actions)
    ready = anyio.Event()
    seen = 0

    def second_intent(event: Event) -> None:  # subscribers hear of durable records only
        nonlocal seen
        if event.kind is EventKind.ACTION_STARTED and event.action == "b":
            seen += 1
            if seen == count:
                ready.set()

    engine = Engine(f"sqlite://{db}", process_limit=count + 8, on_event=second_intent)
    async with engine, anyio.create_task_group() as group:
        for i in range(count):
            group.start_soon(functools.partial(engine.run, saga, run_id=f"run-{i:05d}"))
        await ready.wait()
        print("ready", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
