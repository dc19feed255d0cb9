"""clitest.append: the CLI tests' action, which appends its name to a real file.

Put this folder on PYTHONPATH and the `clitest-actions` distribution (its dist-info next
to it) is installed as far as entry points go. Inputs: `file` (where to append), `name`,
`sleep` (seconds before finishing), `fail` (raise a fatal error), `bad` (raise InputError),
`undo_fail` (the compensation raises a fatal error: the run ends stuck), `undo_fail_while`
(a file: the compensation fails while it exists, a cause an operator can remove),
`hold` / `undo_hold` (a file: the action / its compensation waits while it exists, so a
test can kill the process mid-action and let the resumed run through by deleting it).
"""

from __future__ import annotations

import os
import time
from typing import Any

import anyio
from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs
from sagactl.engine.errors import FatalError, InputError


def _append(path: str, line: str) -> None:
    # One write(2) per line: the kernel keeps it once written, so a SIGKILL right after
    # leaves the line in the file. No fsync: the tests kill processes, never the machine
    # (an fsync per line made 2,000 held runs take a minute to start).
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def _wait_while(path: object) -> None:
    # Another process deletes the file: polling is the only signal there is. A stat is
    # microseconds (no worker thread); the interval grows to 0.2 s so that thousands of
    # held actions (the bulk tests) do not keep the event loop busy polling.
    delay = 0.02
    while path and os.path.exists(str(path)):  # noqa: ASYNC240
        await anyio.sleep(delay)
        delay = min(delay * 1.5, 0.2)


class Append(Action):
    """Appends `name` to `file` (and `undo:name` when compensated)."""

    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "file": {"type": "string"},
            "name": {"type": "string"},
            "sleep": {"type": "number"},
            "fail": {"type": "boolean"},
            "bad": {"type": "boolean"},
            "hold": {"type": "string"},
            "undo_hold": {"type": "string"},
            "undo_fail": {"type": "boolean"},
            "undo_fail_while": {"type": "string"},
        },
        "required": ["file", "name"],
    }
    output_schema: dict[str, Any] = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "at": {"type": "number"}},
    }

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        _append(str(inputs["file"]), f"start:{inputs['name']}")
        if inputs.get("bad"):
            raise InputError(f"{inputs['name']}: the input is not acceptable")
        if inputs.get("fail"):
            raise FatalError(f"{inputs['name']} failed on purpose")
        sleep = float(inputs.get("sleep") or 0)
        steps = 10
        for step in range(steps):
            if sleep:
                await anyio.sleep(sleep / steps)
            ctx.progress((step + 1) / steps, f"step {step + 1}")
        await _wait_while(inputs.get("hold"))
        _append(str(inputs["file"]), str(inputs["name"]))
        return {"name": str(inputs["name"]), "at": time.time()}

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        _append(str(inputs["file"]), f"undo-start:{inputs['name']}")
        await _wait_while(inputs.get("undo_hold"))
        if inputs.get("undo_fail"):
            raise FatalError(f"{inputs['name']} cannot be undone")
        cause = inputs.get("undo_fail_while")
        if cause and await anyio.Path(str(cause)).exists():
            raise FatalError(f"{inputs['name']} cannot be undone while {cause} exists")
        _append(str(inputs["file"]), f"undo:{inputs['name']}")


def append_factory(deps: Dependencies) -> Append:
    return Append()
