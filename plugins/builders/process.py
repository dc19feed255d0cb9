"""Runs a builder's command line, streaming its output lines; kills it when cancelled."""

from __future__ import annotations

import collections
import subprocess
from collections.abc import Mapping, Sequence

import anyio
from anyio.streams.text import TextReceiveStream

from .base import ImageBuildFailed, OutputCallback

TAIL_LINES = 20


async def run_streaming(
    argv: Sequence[str],
    on_output: OutputCallback,
    *,
    env: Mapping[str, str] | None = None,
    what: str = "build",
) -> list[str]:
    """Runs `argv` with stdout and stderr merged, each line to `on_output`; returns the last
    lines. Raises ImageBuildFailed naming the exit status and the output's tail."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    process = await anyio.open_process(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        pending = ""
        async for text in TextReceiveStream(process.stdout, errors="replace"):
            pending += text
            *lines, pending = pending.split("\n")
            for line in lines:
                line = line.rstrip("\r")
                tail.append(line)
                on_output(line)
        if pending:
            tail.append(pending)
            on_output(pending)
        status = await process.wait()
    finally:
        if process.returncode is None:
            with anyio.CancelScope(shield=True):
                process.kill()
                await process.wait()
        await process.aclose()
    if status != 0:
        shown = "\n".join(tail)
        raise ImageBuildFailed(f"{what} failed (exit status {status}):\n{shown}", shown)
    return list(tail)


async def run_quiet(argv: Sequence[str]) -> tuple[int, str]:
    """Runs a short command; (exit status, stdout+stderr)."""
    result = await anyio.run_process(list(argv), check=False, stderr=subprocess.STDOUT)
    return result.returncode, result.stdout.decode(errors="replace")
